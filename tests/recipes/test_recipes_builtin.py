"""The built-in recipes, built from real upstream sources with pmpm's CLI, offline.

No conda channel and no upstream site is reachable here, so the sources come from Debian's
source archive (``apt-get source``): where Debian ships the upstream tarball unchanged (same
sha256 as the recipe), it is dropped into a folder named by ``PMPM_SOURCE_MIRRORS`` and the
recipe is used exactly as shipped; zlib's Debian tarball is repacked, so the test overrides the
recipe's source the way a user would.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pmpm.host.detect import detect_host
from tests.clihelp import installed, pmpm, tree_digest
from tests.debian_sources import DebianSourceUnavailable, fetch_debian_orig


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    return tmp_path_factory.mktemp("mirror")


def orig(package: str, mirror: Path) -> Path:
    try:
        return fetch_debian_orig(package, mirror)
    except DebianSourceUnavailable as exc:
        pytest.skip(f"Debian source {package} unavailable: {exc}")


def write_env(path: Path, demo_channel, packages: str, deps: str = "demo-data") -> Path:
    path.write_text(
        f"channels: [{demo_channel.path}]\ndependencies: [{deps}]\n_pmpm:\n  packages:\n{packages}"
    )
    return path


def march(path: Path) -> str:
    out = subprocess.run(["readelf", "-p", ".GCC.command.line", path], capture_output=True, text=True).stdout
    return out


def _log_of(out: str, package: str) -> Path:
    line = next(line for line in out.splitlines() if line.startswith(f"installed {package} "))
    return Path(line.split("log: ")[1].rstrip(")"))


def test_cjson_cmake_from_upstream_tarball(tmp_path, demo_channel, mirror):
    orig("cjson", mirror)
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", demo_channel, "    - cjson\n")
    result = pmpm(
        "conda_install", prefix, "--file", env, "--offline", env={"PMPM_SOURCE_MIRRORS": str(mirror)}
    )
    assert result.code == 0, result.text
    assert installed(prefix)["cjson"].startswith("1.7.15-pmpm_")
    library = next((prefix / "lib").glob("libcjson.so.1.7.15"))
    assert detect_host().arch_flags("cc").split()[0] in march(library)
    pc = subprocess.run(
        ["pkg-config", "--libs", "libcjson"],
        env={**os.environ, "PKG_CONFIG_PATH": str(prefix / "lib" / "pkgconfig")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"-L{prefix}/lib" in pc.stdout


def test_serd_meson_from_upstream_tarball(tmp_path, demo_channel, mirror):
    orig("serd", mirror)
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", demo_channel, "    - serd\n")
    result = pmpm(
        "conda_install", prefix, "--file", env, "--offline", env={"PMPM_SOURCE_MIRRORS": str(mirror)}
    )
    assert result.code == 0, result.text
    version = subprocess.run([prefix / "bin" / "serdi", "-v"], capture_output=True, text=True, check=True)
    assert "0.30.16" in version.stdout + version.stderr
    assert detect_host().arch_flags("cc").split()[0] in march(next((prefix / "lib").glob("libserd-0.so.0.*")))


def test_zlib_with_a_user_supplied_source(tmp_path, demo_channel, mirror):
    tarball = orig("zlib", mirror)
    sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
    prefix = tmp_path / "p"
    packages = f"    - zlib: {{version: '1.2.13', url: '{tarball.as_uri()}', sha256: {sha}}}\n"
    env = write_env(tmp_path / "env.yml", demo_channel, packages)
    result = pmpm("conda_install", prefix, "--file", env, "--offline")
    assert result.code == 0, result.text
    assert installed(prefix)["zlib"].startswith("1.2.13-pmpm_")
    assert (prefix / "lib" / "libz.so.1.2.13").is_file()
    assert detect_host().arch_flags("cc").split()[0] in march(prefix / "lib" / "libz.so.1.2.13")


def test_broken_recipe_leaves_prefix_identical_and_names_its_log(tmp_path, demo_channel, mirror):
    orig("cjson", mirror)
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", demo_channel, "    - cjson\n")
    assert (
        pmpm(
            "conda_install", prefix, "--file", env, "--offline", env={"PMPM_SOURCE_MIRRORS": str(mirror)}
        ).code
        == 0
    )
    before = tree_digest(prefix)

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    broken = (Path(__file__).resolve().parents[2] / "pmpm" / "recipes" / "cjson.yaml").read_text()
    broken = broken.replace("    - -DENABLE_CJSON_TEST=OFF", "    - -DCMAKE_C_COMPILER=/nonexistent/cc")
    (recipes / "cjson.yaml").write_text(broken)
    env.write_text(env.read_text().replace("_pmpm:\n", "_pmpm:\n  recipes: [recipes]\n"))
    result = pmpm(
        "conda_install", prefix, "--file", env, "--offline", env={"PMPM_SOURCE_MIRRORS": str(mirror)}
    )
    assert result.code == 1
    assert "building cjson failed at step `configure`" in result.err
    log = Path(result.err.split("log: ")[1].split()[0])
    assert log.is_file() and "/nonexistent/cc" in log.read_text()
    assert tree_digest(prefix) == before


@pytest.mark.slow
def test_fftw_simd_follows_the_target(tmp_path, demo_channel, mirror):
    orig("fftw3", mirror)
    env_vars = {"PMPM_SOURCE_MIRRORS": str(mirror)}
    host = detect_host()
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", demo_channel, "    - fftw: {precision: float}\n")
    result = pmpm("conda_install", prefix, "--file", env, "--offline", env=env_vars, timeout=1800)
    assert result.code == 0, result.text
    configure = _log_of(result.out, "fftw").read_text().split("=== fftw: build")[0]
    for feature, flag in (
        ("sse2", "--enable-sse2"),
        ("avx2", "--enable-avx2"),
        ("avx512f", "--enable-avx512"),
    ):
        assert (flag in configure) == (feature in host.features), flag
    assert host.arch_flags("cc").split()[0] in march(next((prefix / "lib").glob("libfftw3f.so.3.*")))
    wisdom = subprocess.run(
        [prefix / "bin" / "fftwf-wisdom", "-V"], capture_output=True, text=True, check=True
    )
    assert "3.3.10" in wisdom.stdout

    # a generic target for clusters whose nodes differ: no AVX kernels, baseline flags
    env.write_text(env.read_text().replace("{precision: float}", "{precision: float, target: x86_64}"))
    result = pmpm("conda_install", prefix, "--file", env, "--offline", env=env_vars, timeout=1800)
    assert result.code == 0, result.text
    reasons = result.out.split("fftw 3.3.10: rebuild (")[1].split(")")[0]
    assert "flags changed" in reasons and "target changed" in reasons
    configure = _log_of(result.out, "fftw").read_text().split("=== fftw: build")[0]
    assert "--enable-avx" not in configure and "--enable-sse2" in configure
    assert "-march=x86-64 " in march(next((prefix / "lib").glob("libfftw3f.so.3.*")))


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("mpicc"), reason="no system MPI (CI installs Debian's OpenMPI)")
def test_mpi4py_against_the_system_mpi(tmp_path, demo_channel):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", demo_channel, "    - mpi4py\n", deps="python")
    result = pmpm("conda_install", prefix, "--file", env, timeout=1800)
    if (
        result.code != 0
        and "pip" in result.err
        and ("connection" in result.err.lower() or "index" in result.err)
    ):
        pytest.skip(f"PyPI unreachable: {result.err[-300:]}")
    assert result.code == 0, result.text
    probe = subprocess.run(
        [prefix / "bin" / "python", "-c", "from mpi4py import MPI; print(MPI.Get_library_version())"],
        capture_output=True,
        text=True,
        check=True,
    )
    shown = subprocess.run(["mpicc", "--showme:version"], capture_output=True, text=True)
    mpicc = shown.stdout + shown.stderr
    vendor = "Open MPI" if "Open MPI" in mpicc else "MPICH"
    assert vendor in probe.stdout
