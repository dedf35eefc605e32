"""``--backend conda|mamba|micromamba``: drive an installed executable instead of py-rattler."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.build.test_compile_stage import project  # noqa: F401  (the recipes-and-sources fixture)
from tests.clihelp import TEST_RECIPES, installed, march, pmpm, write_env
from tests.real_conda import build_real_conda

pytestmark = pytest.mark.skipif(not TEST_RECIPES.is_dir(), reason="../shared/realworld channels are absent")


def test_missing_executable_is_a_clear_error(tmp_path):
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependency"])
    for backend in ("conda", "mamba", "micromamba"):
        result = pmpm(
            "conda_install",
            tmp_path / "p",
            "--file",
            env,
            "--backend",
            backend,
            env={"PATH": str(tmp_path / "empty")},
        )
        assert result.code == 1, result.text
        assert f"no {backend!r} executable on PATH" in result.err
        assert "--backend rattler" in result.err
        assert not (tmp_path / "p").exists()


def test_unknown_backend_is_refused(tmp_path):
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependency"])
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--backend", "pip")
    assert result.code != 0
    assert "micromamba" in result.err  # the choices are listed


def _stand_in(bin_dir, name):
    """MOCK: no mamba or micromamba can be installed on these machines (no conda channel and no
    such Debian or PyPI package), so this stand-in only records how pmpm calls it and creates the
    prefix's conda-meta/history as the real tool would. conda itself is tested for real below."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "argv = sys.argv[1:]\n"
        "env_file = argv[argv.index('-f') + 1]\n"
        "prefix = argv[argv.index('-p') + 1]\n"
        "os.makedirs(os.path.join(prefix, 'conda-meta'), exist_ok=True)\n"
        "open(os.path.join(prefix, 'conda-meta', 'history'), 'a').close()\n"
        "log = os.environ['STAND_IN_LOG']\n"
        "calls = json.load(open(log)) if os.path.exists(log) else []\n"
        "calls.append({'argv': argv, 'env_file': open(env_file).read(),\n"
        "              'offline': os.environ.get('CONDA_OFFLINE')})\n"
        "json.dump(calls, open(log, 'w'))\n"
    )
    script.chmod(0o755)


def test_micromamba_and_conda_are_driven_with_a_resolved_env_file(tmp_path):
    env = write_env(
        tmp_path / "env.yml", [TEST_RECIPES], ["dependency >=2", "dependent"], "variables:\n  A: b\n"
    )
    log = tmp_path / "calls.json"
    extra = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "STAND_IN_LOG": str(log)}
    for tool in ("micromamba", "conda"):
        _stand_in(tmp_path / "bin", tool)
    prefix = tmp_path / "p"

    assert pmpm("conda_install", prefix, "--file", env, "--backend", "micromamba", env=extra).code == 0
    assert (
        pmpm("conda_install", prefix, "--file", env, "--backend", "micromamba", env=extra)
        .out.strip()
        .endswith("up to date with " + str(env))
    )
    write_env(env, [TEST_RECIPES], ["dependency"])
    assert (
        pmpm("conda_install", prefix, "--file", env, "--backend", "conda", "--offline", env=extra).code == 0
    )

    calls = json.loads(log.read_text())
    assert [c["argv"][:2] for c in calls] == [["create", "-y"], ["env", "update"]]
    assert calls[1]["argv"][-1] == "--prune"  # conda's `env update` has no --offline: CONDA_OFFLINE
    assert [c["offline"] for c in calls] == [None, "true"]
    first = yaml.safe_load(calls[0]["env_file"])
    assert first["channels"] == [TEST_RECIPES.as_uri(), "nodefaults"]
    assert first["dependencies"] == ["dependency >=2", "dependent"]
    assert first["variables"] == {"A": "b"}


@pytest.fixture(scope="session")
def real_conda(tmp_path_factory):
    return build_real_conda(tmp_path_factory)


@pytest.mark.parametrize("setting", ["backend: conda", "conda: conda"])  # the original pmpm's spelling
def test_env_files_backend_drives_the_real_conda(real_conda, tmp_path, setting):
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependent=1"], f"_pmpm:\n  {setting}\n")
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env, "--offline", env=real_conda.env)
    assert result.code == 0, result.text
    assert f"installer: conda (`_pmpm.backend` of {env})" in result.out
    assert installed(prefix) == {"dependent": "1.0-0", "dependency": "1.0-0"}
    history = (prefix / "conda-meta" / "history").read_text()
    assert "# conda version: 26.7.1" in history and " env update -p " in history  # conda made it

    write_env(env, [TEST_RECIPES], ["dependent"], f"_pmpm:\n  {setting}\n")  # an update, by conda too
    result = pmpm("conda_install", prefix, "--file", env, "--offline", env=real_conda.env)
    assert result.code == 0, result.text
    assert installed(prefix) == {"dependent": "2.0-0", "dependency": "2.0-0"}  # conda's env update: newest
    assert (prefix / "conda-meta" / "history").read_text().count(" env update -p ") == 2


def test_backend_flag_overrides_the_env_file(real_conda, tmp_path):
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependent=1"], "_pmpm:\n  backend: conda\n")
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env, "--backend", "rattler", env=real_conda.env)
    assert result.code == 0, result.text
    assert f"installer: rattler (--backend overrides `_pmpm.backend: conda` of {env})" in result.out
    assert installed(prefix) == {"dependent": "1.0-0", "dependency": "1.0-0"}
    history = (prefix / "conda-meta" / "history").read_text()
    assert "# cmd: pmpm conda_install" in history and "26.7.1" not in history  # not conda's work


def test_the_real_conda_with_a_stack_per_target(real_conda, project, tmp_path):  # noqa: F811
    """``_pmpm.backend: conda`` with two targets: conda makes the conda stack (the recipes'
    conda requirement included), pmpm compiles a stack per target beside it, and a second run
    is up to date."""
    import archspec.cpu

    host = archspec.cpu.host()
    a, b = "x86_64", "x86_64_v2"
    if host.family.name != "x86_64" or not archspec.cpu.TARGETS[b] <= host:
        pytest.skip(f"needs an x86-64 CPU running {b} (this one is {host.name})")
    env, _ = project
    env.write_text(env.read_text().replace("_pmpm:\n", f"_pmpm:\n  backend: conda\n  targets: [{a}, {b}]\n"))
    prefix = tmp_path / "p"
    run_env = {**real_conda.env, "PMPM_CACHE_DIR": str(tmp_path / "cache")}
    result = pmpm("conda_install", prefix, "--file", env, "--offline", env=run_env)
    assert result.code == 0, result.text
    assert f"is ready (conda), compiled for 2 targets ({a}, {b})" in result.out
    conda_stack = installed(prefix)
    assert "libdemo" in conda_stack and "demo-data" in conda_stack and "greet" not in conda_stack
    assert " env update -p " in (prefix / "conda-meta" / "history").read_text()  # conda made it
    for target in (a, b):
        stack = prefix / "compile" / target
        assert installed(stack)["hello"].startswith("2.0-pmpm_")
        assert march(stack / "lib" / "libgreet.so") == target.replace("_", "-")
        ran = subprocess.run([stack / "bin" / "hello"], capture_output=True, text=True)
        assert ran.stdout == "hello, world\n", ran.stderr

    again = pmpm("conda_install", prefix, "--file", env, "--offline", env=run_env)
    assert again.code == 0 and "up to date" in again.out and "building" not in again.out, again.text
