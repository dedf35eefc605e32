"""``pmpm conda_install`` with really compiled packages: relocation, upgrades, removals."""

from __future__ import annotations

import os
import subprocess

from tests.clihelp import installed, pmpm, tree_digest, write_env


def _run_tool(prefix):
    return subprocess.run([prefix / "bin" / "demo-tool"], capture_output=True, text=True, check=True).stdout


def test_compiled_packages_are_relocated_into_the_prefix(tmp_path, demo_channel):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-tool"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert installed(prefix) == {"demo-tool": "1.0-0", "libdemo": "2.0-0", "demo-data": "1.0-0"}
    assert _run_tool(prefix) == f"demo-tool 2.0 prefix={prefix}\n"  # binary placeholder replaced
    assert os.readlink(prefix / "lib" / "libdemo.so") == "libdemo.so.2"
    assert f"prefix={prefix}\n" in (prefix / "lib" / "pkgconfig" / "demo.pc").read_text()  # text placeholder
    assert demo_channel.build_prefix not in (prefix / "bin" / "demo-config").read_text()


def test_downgrade_then_remove_through_the_env_file(tmp_path, demo_channel):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-tool"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0

    write_env(env, [demo_channel.path], ["demo-tool", "demo-needs-old"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert "↓ libdemo 2.0-0 -> 1.0-0" in result.out
    assert _run_tool(prefix) == f"demo-tool 1.0 prefix={prefix}\n"
    assert not (prefix / "lib" / "libdemo.so.2.0.0").exists()  # the old version's files are gone

    write_env(env, [demo_channel.path], ["libdemo"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert installed(prefix) == {"libdemo": "1.0-0"}  # kept at the installed version
    assert not (prefix / "bin" / "demo-tool").exists()

    result = pmpm("conda_install", prefix, "--file", env, "--update")
    assert result.code == 0, result.text
    assert installed(prefix) == {"libdemo": "2.0-0"}  # --update moves to the newest


def test_unsatisfiable_compiled_dependency_keeps_the_prefix(tmp_path, demo_channel):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-tool"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    before = tree_digest(prefix)
    write_env(env, [demo_channel.path], ["demo-tool", "demo-conflict"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1
    assert "libdemo >=5" in result.err
    assert f"{env}:5" in result.err
    assert tree_digest(prefix) == before


def test_prefix_longer_than_the_build_placeholder_is_refused_and_removed(tmp_path, demo_channel):
    prefix = tmp_path / ("x" * 60) / ("y" * 60) / ("z" * 60)
    env = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-tool"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1
    assert "placeholder" in result.err and "Traceback" not in result.text
    assert not prefix.exists()
