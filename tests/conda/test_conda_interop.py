"""A pmpm prefix is a conda environment to the real conda: md5s, history, requested specs, backups.

conda 26.7.1 from ``../shared/vendor`` (see ``tests/real_conda.py``) reads the prefixes pmpm
makes, with compiled packages among them, and is checked against an environment conda made.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

from tests.clihelp import TEST_RECIPES, pmpm, write_env
from tests.real_conda import build_real_conda
from tests.recordhelp import make_project


@pytest.fixture(scope="session")
def real_conda(tmp_path_factory):
    return build_real_conda(tmp_path_factory)


@pytest.fixture(scope="module")
def compiled_prefix(tmp_path_factory, demo_channel):
    """A pmpm prefix with conda packages (libdemo, python, demo-data) and two compiled ones
    (hello, and greet which hello requires)."""
    project = make_project(tmp_path_factory.mktemp("project"), demo_channel.path)
    prefix = tmp_path_factory.mktemp("envs") / "p"
    project.install(prefix)
    return prefix, project


def _records(prefix: Path) -> dict[str, dict]:
    return {
        data["name"]: data
        for data in (json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("*.json"))
    }


def test_conda_lists_every_package_with_its_md5(real_conda, compiled_prefix):
    prefix, _ = compiled_prefix
    records = _records(prefix)
    assert {n for n, r in records.items() if r["build"].startswith("pmpm_")} == {"greet", "hello"}
    out = real_conda.run("list", "--explicit", "--md5", "-p", prefix).stdout
    listed = dict(line.split("#") for line in out.splitlines() if line.startswith("file://"))
    assert set(listed) == {r["url"] for r in records.values()}
    for record in records.values():
        package = Path(unquote(urlparse(record["url"]).path))
        assert listed[record["url"]] == hashlib.md5(package.read_bytes()).hexdigest() == record["md5"]


def test_conda_exports_the_env_files_specs_from_history(real_conda, compiled_prefix):
    prefix, _ = compiled_prefix
    out = real_conda.run("env", "export", "--from-history", "-p", prefix).stdout
    # the env file's conda dependencies, then its `_pmpm.packages` (those conda must keep too)
    assert yaml.safe_load(out)["dependencies"] == ["libdemo", "python", "hello"]


def test_every_record_keeps_what_was_asked_for(compiled_prefix):
    prefix, project = compiled_prefix
    asked = {n: r["requested_specs"] for n, r in _records(prefix).items()}
    conda_side = {"libdemo": ["libdemo"], "python": ["python"], "demo-data": []}
    assert asked == {**conda_side, "hello": ["hello"], "greet": []}  # greet: only hello's recipe needs it
    project.greet_c.write_text(project.greet_c.read_text().replace("hello, world", "hi"))
    project.install(prefix)  # rebuilds greet and hello: installs compiled packages only
    assert {n: r["requested_specs"] for n, r in _records(prefix).items()} == asked
    # and conda's history says the same: this run added no spec and removed none
    entries = (prefix / "conda-meta" / "history").read_text().split("==> ")[1:]
    assert len(entries) == 2
    assert "# update specs: ['libdemo', 'python', 'hello']" in entries[1]
    assert "# remove specs" not in entries[1]


def _conda_install_conflicting(real_conda, prefix: Path) -> subprocess.CompletedProcess[str]:
    """``dependent=1`` needs ``dependency <2``: asking for ``dependency=2`` conflicts with it."""
    return real_conda.run(
        "install", "--offline", "-y", "-p", prefix, "-c", TEST_RECIPES.as_uri(), "--override-channels",
        "dependency=2", check=False,
    )  # fmt: skip


def test_conflicting_conda_install_is_refused_as_on_an_env_conda_made(real_conda, tmp_path):
    made_by_conda = tmp_path / "by-conda"
    real_conda.run(
        "create", "--offline", "-y", "-p", made_by_conda, "-c", TEST_RECIPES.as_uri(), "--override-channels",
        "dependent=1",
    )  # fmt: skip
    made_by_pmpm = tmp_path / "by-pmpm"
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependent=1"])
    assert pmpm("conda_install", made_by_pmpm, "--file", env).code == 0

    for prefix in (made_by_conda, made_by_pmpm):
        before = {n: r["version"] for n, r in _records(prefix).items()}
        assert before == {"dependent": "1.0", "dependency": "1.0"}
        result = _conda_install_conflicting(real_conda, prefix)
        assert result.returncode != 0, f"{prefix}: {result.stdout}"  # not a silent upgrade of dependent
        assert "UnsatisfiableError" in result.stderr + result.stdout
        assert {n: r["version"] for n, r in _records(prefix).items()} == before


def test_specs_dropped_from_the_env_file_leave_conda_history(real_conda, tmp_path):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependent", "versioned 1.*"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    # a conda command in between: its own history entry, which pmpm reads back
    real_conda.run(
        "install", "--offline", "-y", "-p", prefix, "-c", TEST_RECIPES.as_uri(), "small-executable"
    )
    write_env(env, [TEST_RECIPES], ["dependent"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    out = real_conda.run("env", "export", "--from-history", "-p", prefix).stdout
    assert yaml.safe_load(out)["dependencies"] == ["dependent"]
    last = (prefix / "conda-meta" / "history").read_text().split("==> ")[-1]
    assert "# remove specs: ['small-executable', 'versioned']" in last
    assert "-file://" in last and "versioned-1.0-0" in last


def _tags(root: Path) -> list[Path]:
    return [Path(d) / "CACHEDIR.TAG" for d, _, files in os.walk(root) if "CACHEDIR.TAG" in files]


def _backup_keeps(root: Path, tmp_path: Path) -> set[str]:
    """What ``tar --exclude-caches`` (as borg and restic do) puts in a backup of ``root``."""
    archive = tmp_path / "backup.tar"
    subprocess.run(["tar", "--exclude-caches", "-cf", archive, "-C", root, "."], check=True)
    with tarfile.open(archive) as tar:
        return {os.path.normpath(name) for name in tar.getnames()}


def test_prefix_is_not_tagged_as_a_cache(compiled_prefix, tmp_path):
    prefix, _ = compiled_prefix
    assert _tags(prefix) == []
    kept = _backup_keeps(prefix, tmp_path)
    assert {"bin/hello", "lib/libgreet.so", "conda-meta/history", "share/demo-data/data.txt"} <= kept


def test_system_install_stacks_are_not_tagged_as_caches(tmp_path, demo_channel):
    project = make_project(tmp_path / "project", demo_channel.path)
    root = tmp_path / "apps"
    result = pmpm("system_install", root, "--file", project.env)
    assert result.code == 0, result.text
    assert (root / "conda" / "conda-meta").is_dir() and (root / "compile" / "conda-meta").is_dir()
    assert _tags(root) == []
    kept = _backup_keeps(root, tmp_path)
    assert {"compile/bin/hello", "conda/lib/libdemo.so", "conda/conda-meta/history"} <= kept
    asked = {n: r["requested_specs"] for n, r in _records(root / "compile").items()}
    assert asked == {"hello": ["hello"], "greet": []}


def test_a_spec_added_for_an_installed_dependency_reaches_conda(real_conda, tmp_path):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependent"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    before = {n: r["url"] for n, r in _records(prefix).items()}
    write_env(env, [TEST_RECIPES], ["dependent", "dependency"])  # installed already, now asked for
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert {n: r["url"] for n, r in _records(prefix).items()} == before  # no package changed
    assert _records(prefix)["dependency"]["requested_specs"] == ["dependency"]
    out = real_conda.run("env", "export", "--from-history", "-p", prefix).stdout
    assert yaml.safe_load(out)["dependencies"] == ["dependent", "dependency"]
    again = pmpm("conda_install", prefix, "--file", env)
    assert again.code == 0 and "up to date" in again.out


def test_a_prefix_rebuilt_from_a_lock_asks_conda_for_the_same(real_conda, compiled_prefix, tmp_path):
    prefix, _ = compiled_prefix
    lock = tmp_path / "env.lock"
    assert pmpm("export", prefix, "-o", lock).code == 0
    rebuilt = tmp_path / "rebuilt"
    result = pmpm("conda_install", rebuilt, "--lock", lock)
    assert result.code == 0, result.text
    asked = {n: r["requested_specs"] for n, r in _records(prefix).items()}
    again = {n: r["requested_specs"] for n, r in _records(rebuilt).items()}
    # the lock does not say which compiled packages the env file named: all count as asked for
    assert again == {**asked, "greet": ["greet"]}
    out = real_conda.run("env", "export", "--from-history", "-p", rebuilt).stdout
    assert yaml.safe_load(out)["dependencies"] == ["libdemo", "python", "greet", "hello"]
    assert _tags(rebuilt) == []
