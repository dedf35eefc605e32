"""``pip:`` entries, installed with the environment's own python after the conda stage."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.clihelp import installed, pmpm, tree_digest, write_env


def _pip_section(*entries: str) -> str:
    return "  - pip:\n" + "".join(f"      - {e}\n" for e in entries)


def test_pip_entries_install_into_the_env_python(tmp_path, demo_channel):
    prefix = tmp_path / "p"
    env = write_env(
        tmp_path / "env.yml", [demo_channel.path], ["python"], _pip_section(str(demo_channel.wheel))
    )
    result = pmpm("conda_install", prefix, "--file", env, "--offline")
    assert result.code == 0, result.text
    assert "python" in installed(prefix)
    probe = subprocess.run(
        [prefix / "bin" / "python", "-c", "import demo_pip_pkg, sys; print(demo_pip_pkg.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(str(prefix / "lib"))


def test_relative_pip_entries_are_relative_to_the_env_file(tmp_path, demo_channel, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / demo_channel.wheel.name).write_bytes(demo_channel.wheel.read_bytes())
    env = write_env(
        folder / "env.yml", [demo_channel.path], ["python"], _pip_section(f"./{demo_channel.wheel.name}")
    )
    monkeypatch.chdir(tmp_path)
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--offline")
    assert result.code == 0, result.text


def test_failing_pip_leaves_the_prefix_as_it_was(tmp_path, demo_channel):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [demo_channel.path], ["python"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    before = tree_digest(prefix)

    write_env(
        env, [demo_channel.path], ["python", "demo-data"], _pip_section("no-such-project-pmpm-test==1.0")
    )
    result = pmpm("conda_install", prefix, "--file", env, "--offline")
    assert result.code == 1
    assert f"{env}:6" in result.err  # the pip: line
    assert "log: " in result.err
    log = result.err.split("log: ")[1].split()[0]
    assert "no-such-project-pmpm-test" in Path(log).read_text()
    assert "Traceback" not in result.err.split("last lines of the log")[0]
    assert tree_digest(prefix) == before
    assert "demo-data" not in installed(prefix)


def test_pip_entries_without_python_are_a_clear_error(tmp_path, demo_channel):
    env = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-data"], _pip_section("six"))
    result = pmpm("conda_install", tmp_path / "p", "--file", env)
    assert result.code == 1
    assert "no python" in result.err and f"{env}:5" in result.err
    assert "add python" in result.err
    assert not (tmp_path / "p").exists()
