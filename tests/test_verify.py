"""``pmpm verify`` catches each kind of drift; ``pmpm diff`` says how two environments differ."""

from __future__ import annotations

import json
import subprocess

import pytest
from factories import write_demo_wheel

from tests.clihelp import pmpm
from tests.recordhelp import make_project


def _edit(path, data: bytes) -> None:
    """Change an installed file as an editor that saves a new file does. Installed files are
    hard links into the package cache, shared by every prefix with that package (as with
    conda): writing into one in place would change them all."""
    path.unlink()
    path.write_bytes(data)


@pytest.fixture
def built(tmp_path, demo_channel):
    project = make_project(tmp_path, demo_channel.path)
    prefix = tmp_path / "p"
    project.install(prefix)
    return project, prefix


def test_a_fresh_environment_verifies(built):
    _, prefix = built
    subprocess.run([prefix / "bin" / "python", "-c", "import json"], check=True)  # writes no drift
    result = pmpm("verify", prefix)
    assert result.code == 0, result.text
    assert "matches its record" in result.out


def test_modified_deleted_and_extra_files_are_listed(built):
    _, prefix = built
    _edit(prefix / "include" / "greet.h", b"/* changed */\n")  # a compiled package's file
    (prefix / "share" / "hello" / "where.txt").unlink()
    (prefix / "lib" / "stray.so").write_bytes(b"\0")
    result = pmpm("verify", prefix)
    assert result.code == 1
    assert "modified: include/greet.h (greet)" in result.out
    assert "missing: share/hello/where.txt (hello)" in result.out
    assert "extra: lib/stray.so" in result.out
    assert "error:" in result.err and "1 modified, 1 missing, 1 extra" in result.err
    assert "Traceback" not in result.text

    report = json.loads(pmpm("verify", prefix, "--json").out)
    assert report["ok"] is False and len(report["problems"]) == 3


def test_a_modified_conda_package_file_is_caught(built):
    _, prefix = built
    target = prefix / "lib" / "libdemo.so.2.0.0"
    _edit(target, target.read_bytes() + b"\0")
    result = pmpm("verify", prefix)
    assert result.code == 1 and "modified: lib/libdemo.so.2.0.0 (libdemo)" in result.out


def test_pip_install_behind_pmpms_back_is_caught(built, tmp_path):
    _, prefix = built
    wheel = write_demo_wheel(tmp_path / "wheels")
    subprocess.run(
        [prefix / "bin" / "python", "-m", "pip", "install", "--no-index", "--no-deps", "-q", wheel],
        check=True,
        capture_output=True,
    )
    result = pmpm("verify", prefix)
    assert result.code == 1
    assert "package added: demo-pip-pkg 0.1 (installed by pip, not by pmpm)" in result.out
    assert "extra: lib/python" in result.out and "demo_pip_pkg/__init__.py" in result.out


def test_diff_names_versions_flags_and_targets(built, tmp_path):
    project, prefix = built
    other = tmp_path / "q"
    project.write_env(conda="libdemo <2", greet_options="target: x86_64_v2")
    project.install(other)
    result = pmpm("diff", prefix, other)
    assert result.code == 1
    assert "~ libdemo 2.0-0 -> 1.0-0" in result.out
    assert "~ greet (compiled): target " in result.out and "-> x86_64_v2" in result.out
    assert "cflags" in result.out
    same = pmpm("diff", prefix, prefix / "conda-meta" / "pmpm" / "record.json")
    assert same.code == 0 and "same environment" in same.out


def test_verify_and_diff_without_a_record_fail_clearly(tmp_path):
    folder = tmp_path / "not-an-env"
    folder.mkdir()
    for args in (("verify", folder), ("diff", folder, folder), ("diff", folder / "x.json", folder)):
        result = pmpm(*args)
        assert result.code == 1 and result.err.startswith("error:"), result.text
        assert "Traceback" not in result.text
