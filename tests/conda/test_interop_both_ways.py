"""conda and pmpm on one prefix, both ways, with the real conda 26.7.1 (``tests/real_conda.py``).

conda lists, removes and installs (offline, from the local demo channel) in a prefix pmpm made
with compiled packages in it; pmpm's next plan names each change and its next run undoes it:
the env file's state comes back (the same environment id) and ``pmpm verify`` passes. pmpm's runs
use its own installer and, in the second case, the real conda as ``--backend conda``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.clihelp import installed, pmpm
from tests.real_conda import RealConda, build_real_conda
from tests.recordhelp import make_project


@pytest.fixture(scope="session")
def real_conda(tmp_path_factory):
    return build_real_conda(tmp_path_factory)


@pytest.fixture(params=["rattler", "conda"])
def made(request, real_conda, demo_channel, tmp_path):
    """A prefix pmpm made from the demo channel (libdemo 1, demo-tool) with hello and greet compiled:
    ``(prefix, env file, backend, environment id)``."""
    project = make_project(tmp_path / "project", demo_channel.path)
    env = project.env  # without python: conda would add pip to it, which the channel lacks
    env.write_text(env.read_text().replace("  - libdemo\n  - python\n", "  - libdemo 1.*\n  - demo-tool\n"))
    prefix = tmp_path / "p"
    _run(prefix, env, request.param, real_conda)
    return prefix, env, request.param, _verify(prefix, real_conda)


def _run(prefix: Path, env: Path, backend: str, conda: RealConda) -> str:
    result = pmpm("conda_install", prefix, "--file", env, "--backend", backend, env=conda.env)
    assert result.code == 0, result.text
    return result.out


def _verify(prefix: Path, conda: RealConda) -> str:
    """The environment id, after checking that PREFIX matches its record."""
    result = pmpm("verify", prefix, "--json", env=conda.env)
    report = json.loads(result.out)
    assert result.code == 0 and report["ok"], result.text
    return report["environment_id"]


def _drift(prefix: Path, env: Path, conda: RealConda) -> tuple[str, str]:
    """What ``pmpm plan`` and ``pmpm verify`` say about PREFIX now (both must see a change)."""
    plan = pmpm("plan", prefix, "--file", env, "--check", env=conda.env)
    assert plan.code == 1, plan.text  # --check: a run would change something
    verify = pmpm("verify", prefix, env=conda.env)
    assert verify.code == 1, verify.text
    return plan.out, verify.out + verify.err


def _conda_listed(prefix: Path, conda: RealConda) -> dict[str, str]:
    out = conda.run("list", "-p", prefix).stdout
    return {
        f[0]: f"{f[1]}-{f[2]}" for f in (line.split() for line in out.splitlines()) if f and f[0][0] != "#"
    }


def _hello(prefix: Path) -> str:
    return subprocess.run([prefix / "bin" / "hello"], capture_output=True, text=True, check=True).stdout


def test_conda_lists_what_pmpm_installed(real_conda, made):
    prefix, _, _, _ = made
    listed = _conda_listed(prefix, real_conda)
    assert listed == installed(prefix)
    assert {n for n, label in listed.items() if "-pmpm_" in label} == {"greet", "hello"}
    assert {"libdemo": "1.0-0", "demo-tool": "1.0-0", "demo-data": "1.0-0"}.items() <= listed.items()


def test_a_package_conda_removes_comes_back(real_conda, made):
    prefix, env, backend, env_id = made
    real_conda.run("remove", "--offline", "-y", "-p", prefix, "demo-tool")
    assert "demo-tool" not in _conda_listed(prefix, real_conda)
    plan, verify = _drift(prefix, env, real_conda)
    assert "+ demo-tool 1.0-0" in plan
    assert "package removed: demo-tool 1.0-0" in verify
    _run(prefix, env, backend, real_conda)
    assert _conda_listed(prefix, real_conda)["demo-tool"] == "1.0-0"
    assert _verify(prefix, real_conda) == env_id


def test_a_compiled_package_conda_removes_comes_back(real_conda, made):
    prefix, env, backend, env_id = made
    real_conda.run("remove", "--offline", "-y", "-p", prefix, "hello")
    assert not (prefix / "bin" / "hello").exists()
    plan, verify = _drift(prefix, env, real_conda)
    assert "hello 2.0: from cache" in plan  # built before: put back, not built again
    assert "package removed: hello 2.0-pmpm_" in verify
    out = _run(prefix, env, backend, real_conda)
    assert "building" not in out
    assert _hello(prefix) == "hello, world\n"
    assert _verify(prefix, real_conda) == env_id


def test_packages_conda_installs_or_changes_are_undone(real_conda, made, demo_channel):
    prefix, env, backend, env_id = made
    channel = ("-c", demo_channel.url, "--override-channels")
    real_conda.run("install", "--offline", "-y", "-p", prefix, *channel, "demo-needs-old")
    assert _conda_listed(prefix, real_conda)["demo-needs-old"] == "1.0-0"
    plan, verify = _drift(prefix, env, real_conda)
    assert "- demo-needs-old 1.0-0" in plan
    assert "package added: demo-needs-old 1.0-0" in verify
    _run(prefix, env, backend, real_conda)
    assert "demo-needs-old" not in _conda_listed(prefix, real_conda)
    assert _verify(prefix, real_conda) == env_id

    real_conda.run("install", "--offline", "-y", "-p", prefix, *channel, "libdemo=2")  # against `libdemo 1.*`
    assert _conda_listed(prefix, real_conda)["libdemo"] == "2.0-0"
    plan, _ = _drift(prefix, env, real_conda)
    assert "libdemo 2.0-0 -> 1.0-0" in plan
    _run(prefix, env, backend, real_conda)
    assert _conda_listed(prefix, real_conda)["libdemo"] == "1.0-0"
    assert _hello(prefix) == "hello, world\n"
    assert _verify(prefix, real_conda) == env_id
