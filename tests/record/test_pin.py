"""Pinning an experiment: ``pmpm.require``/``environment_id``/``provenance`` and ``pmpm run``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.clihelp import REPO, pmpm
from tests.recordhelp import env_id, make_project

EXPERIMENT = """\
import sys, pmpm
print("id", pmpm.environment_id())
pmpm.require(sys.argv[1])
print("required ok")
"""


@pytest.fixture
def built(tmp_path, demo_channel):
    project = make_project(tmp_path, demo_channel.path)
    prefix = tmp_path / "p"
    project.install(prefix)
    (tmp_path / "experiment.py").write_text(EXPERIMENT)
    return project, prefix


def _in_env(prefix, *args, cwd=None):
    """The environment's own python running pmpm from this checkout, with pmpm's dependencies
    (archspec) from the test's interpreter: as if pmpm were pip-installed in the environment."""
    import archspec

    deps = Path(archspec.__file__).parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(deps)])}
    return subprocess.run(
        [prefix / "bin" / "python", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_require_in_a_subprocess_both_ways(built, tmp_path):
    project, prefix = built
    ident = env_id(prefix)
    ok = _in_env(prefix, tmp_path / "experiment.py", ident)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [f"id {ident}", "required ok"]

    wrong = _in_env(prefix, tmp_path / "experiment.py", "0" * 32)
    assert wrong.returncode != 0
    assert f"has id {ident}, the experiment requires {'0' * 32}" in wrong.stderr
    assert "EnvironmentMismatch" in wrong.stderr

    project.write_env(conda="libdemo <2")  # the environment moves on
    project.install(prefix, "--update")
    old = _in_env(prefix, tmp_path / "experiment.py", ident)
    assert old.returncode != 0
    assert "what differs from the required environment" in old.stderr
    assert "~ libdemo 2.0-0 -> 1.0-0" in old.stderr


def test_require_outside_a_recorded_environment(tmp_path):
    code = f"import pmpm; pmpm.require('abc', prefix={str(tmp_path)!r})"
    result = subprocess.run(
        ["python3", "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}
    )
    assert result.returncode != 0 and "does not run in an environment pmpm recorded" in result.stderr


def test_provenance_names_the_environment_host_and_commit(built, tmp_path):
    _, prefix = built
    repo = tmp_path / "experiment-repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "analysis.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "one"], cwd=repo, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    code = "import json, pmpm; print(json.dumps(pmpm.provenance()))"
    clean = json.loads(_in_env(prefix, "-c", code, cwd=repo).stdout)
    assert clean["environment_id"] == env_id(prefix)
    assert clean["verify"]["ok"] is True, clean["verify"]
    assert clean["git"] == {"root": str(repo), "commit": commit, "dirty": False}
    assert clean["host"]["target"] and clean["command"][-1] == "-c"
    (repo / "analysis.py").write_text("print(2)\n")
    assert json.loads(_in_env(prefix, "-c", code, cwd=repo).stdout)["git"]["dirty"] is True


def test_pmpm_run_checks_runs_and_writes_provenance(built, tmp_path):
    _, prefix = built
    ident = env_id(prefix)
    prov = tmp_path / "results" / "provenance.json"
    result = pmpm(
        "run",
        prefix,
        "--expect",
        ident,
        "--provenance",
        prov,
        "--",
        "python",
        "-c",
        "import os, sys; print(sys.prefix, os.environ['CONDA_PREFIX']); sys.exit(3)",
    )
    assert result.code == 3, result.text  # the command's own exit code
    assert result.out.strip() == f"{prefix} {prefix}"
    data = json.loads(prov.read_text())
    assert data["environment_id"] == ident and data["exit_code"] == 3 and data["verify"]["ok"] is True
    assert data["command"][:2] == ["python", "-c"]

    marker = tmp_path / "ran"
    wrong = pmpm("run", prefix, "--expect", "f" * 32, "--", "touch", marker)
    assert wrong.code == 1 and "error:" in wrong.err and "Traceback" not in wrong.text
    assert not marker.exists()

    (prefix / "lib" / "stray.so").write_bytes(b"\0")
    drifted = pmpm("run", prefix, "--", "touch", marker)
    assert drifted.code == 1 and "extra: lib/stray.so" in drifted.out and "does not match" in drifted.err
    assert not marker.exists()
    forced = pmpm("run", prefix, "--no-verify", "--", "touch", marker)
    assert forced.code == 0 and marker.exists()


def test_import_pmpm_stays_light():
    code = "import sys, pmpm; print(sorted(m for m in sys.modules if m.startswith(('pmpm.', 'rattler'))))"
    out = subprocess.run(
        ["python3", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ).stdout
    assert out.strip() == "[]"
