"""pmpm installed from its wheel (not an editable checkout) carries its built-in recipes.

The wheel is built from this checkout with ``pip wheel`` (hatchling comes from PyPI, through
pip's cache) and installed into a fresh venv with its dependencies; that venv's ``pmpm`` then
lists the built-ins from its own site-packages and builds one (cjson, from Debian's copy of the
upstream tarball, the recipe used exactly as shipped).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clihelp import REPO, installed
from tests.debian_sources import DebianSourceUnavailable, fetch_debian_orig

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None):
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory) -> Path:
    """A venv holding pmpm installed from a wheel of this checkout (one per session)."""
    root = tmp_path_factory.mktemp("wheel")
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", REPO, "-w", root / "dist")
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next((root / "dist").glob("pmpm-*.whl"))
    venv = root / "venv"
    made = _run(sys.executable, "-m", "venv", venv)
    assert made.returncode == 0, made.stderr
    added = _run(venv / "bin" / "python", "-m", "pip", "install", "-q", wheel)
    assert added.returncode == 0, added.stdout + added.stderr
    return venv


def test_the_wheel_lists_its_builtin_recipes(wheel_venv, tmp_path):
    result = _run(wheel_venv / "bin" / "pmpm", "recipes", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    shipped = wheel_venv.resolve() / "lib"
    lines = {line.split()[0]: line.split()[-1] for line in result.stdout.splitlines() if line.strip()}
    assert {"zlib", "cjson", "fftw", "serd", "mpi4py"} <= lines.keys(), result.stdout
    for origin in lines.values():
        assert Path(origin).resolve().is_relative_to(shipped), origin  # not this checkout's copy


def test_the_wheel_builds_a_builtin_recipe(wheel_venv, tmp_path, demo_channel):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    try:
        fetch_debian_orig("cjson", mirror)
    except DebianSourceUnavailable as exc:
        pytest.skip(f"Debian source cjson unavailable: {exc}")
    env = tmp_path / "env.yml"
    env.write_text(
        f"channels: [{demo_channel.path}]\ndependencies: [demo-data]\n_pmpm: {{packages: [cjson]}}"
    )
    prefix = tmp_path / "p"
    result = _run(
        wheel_venv / "bin" / "pmpm",
        "conda_install",
        prefix,
        "--file",
        env,
        "--offline",
        cwd=tmp_path,
        env={"PMPM_SOURCE_MIRRORS": str(mirror)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(prefix)["cjson"].startswith("1.7.15-pmpm_")
    assert (prefix / "lib" / "libcjson.so.1.7.15").is_file()
    record = (prefix / "conda-meta" / "pmpm" / "builds" / "cjson.json").read_text()
    assert str(REPO) not in record  # the recipe came from the wheel, not from this checkout
