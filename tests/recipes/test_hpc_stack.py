"""The HPC stack of ``examples/hpc/env.yml`` built with ``system_install`` against Debian's Open MPI.

One session-scoped build serves every test here (parallel HDF5, netCDF-C, mpi4py, MPI h5py,
OpenBLAS: the big sources are compiled once). The env file is the example's, with two changes a
user without internet would make too: no conda stack (``conda: false``; Python and numpy come
from a venv on PATH, as from a site's ``module load python``), and HDF5's and OpenBLAS's sources
given as Debian's copies of the upstream tarballs, which Debian repacks (``+repack1``, ``+ds``), so
their sha256 differs from the recipes'. netCDF's Debian tarball is byte-identical to the recipe's
upstream one and is found through ``PMPM_SOURCE_MIRRORS`` unchanged.

What the issue asks of each: two MPI ranks write one HDF5 file collectively through h5py and it
reads back; a netCDF-4 file is written in parallel by a C program compiled against the prefix;
a dgemm agrees with a naive loop, from kernels chosen at build time for the target.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from pmpm.host.detect import detect_host
from tests.clihelp import pmpm
from tests.debian_sources import DebianSourceUnavailable, fetch_debian_orig

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hpc" / "env.yml"
MPICC = "/usr/bin/mpicc.openmpi"
#: Open MPI refuses to start as root without these; harmless otherwise
RUN_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
MPIEXEC = ("mpiexec.openmpi", "-n", "2", "--oversubscribe")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.access(MPICC, os.X_OK), reason="no Debian Open MPI (CI installs libopenmpi-dev)"
    ),
]


@dataclass(frozen=True)
class Stack:
    root: Path
    python: Path  # the venv interpreter the Python packages were built for
    out: str  # pmpm's output
    seconds: float  # wall time of the build, for the CI budget

    @property
    def prefix(self) -> Path:
        return self.root / "compile"

    def env(self) -> dict[str, str]:
        site = next((self.prefix / "lib").glob("python3*/site-packages"))
        path = f"{self.prefix / 'bin'}{os.pathsep}{os.environ['PATH']}"
        return {**os.environ, **RUN_ENV, "PYTHONPATH": str(site), "PATH": path}

    def run(self, *argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in argv], env=self.env(), cwd=cwd, capture_output=True, text=True, timeout=600
        )


def _orig(package: str, mirror: Path) -> Path:
    try:
        return fetch_debian_orig(package, mirror)
    except DebianSourceUnavailable as exc:
        pytest.skip(f"Debian source {package} unavailable: {exc}")


def _venv_with_numpy(root: Path) -> Path:
    """The site's python with numpy, as a `module load python` gives it."""
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    done = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", "numpy"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        pytest.skip(f"pip could not install numpy from PyPI: {done.stderr.strip()[-300:]}")
    return venv


def _env_file(path: Path, mirror: Path) -> Path:
    """The example's `_pmpm` and `variables`, without a conda stack, HDF5/OpenBLAS from Debian."""
    spec = yaml.safe_load(EXAMPLE.read_text())
    overrides = {}
    for name, package in (("hdf5", "hdf5"), ("openblas", "openblas")):
        tarball = _orig(package, mirror)
        sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
        overrides[name] = {"url": tarball.as_uri(), "sha256": sha}
    _orig("netcdf", mirror)  # byte-identical to upstream: found in the mirror by its sha256
    packages = []
    for entry in spec["_pmpm"]["packages"]:
        name, options = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
        packages.append(
            {name: {**options, **overrides.get(name, {})}} if options or name in overrides else name
        )
    section = {**spec["_pmpm"], "conda": False, "packages": packages}
    path.write_text(yaml.safe_dump({"dependencies": [], "variables": spec["variables"], "_pmpm": section}))
    return path


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    work = tmp_path_factory.mktemp("hpc")
    mirror = work / "mirror"
    env_file = _env_file(work / "env.yml", mirror)
    venv = _venv_with_numpy(work)
    path = f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    started = time.monotonic()
    result = pmpm(
        "system_install",
        work / "stack",
        "--file",
        env_file,
        env={"PATH": path, "PMPM_SOURCE_MIRRORS": str(mirror), **RUN_ENV},
        timeout=3600,
    )
    seconds = time.monotonic() - started
    if result.code != 0 and "pip" in result.text and "connection" in result.text.lower():
        pytest.skip(f"PyPI unreachable: {result.text[-300:]}")
    assert result.code == 0, result.text
    print(f"\nHPC stack built in {seconds:.0f} s")
    return Stack(work / "stack", venv / "bin" / "python", result.out, seconds)


def _log(stack: Stack, package: str) -> str:
    line = next(line for line in stack.out.splitlines() if line.startswith(f"installed {package} "))
    return Path(line.split("log: ")[1].rstrip(")")).read_text()


WRITE_H5 = """\
import sys
import h5py, numpy
from mpi4py import MPI
comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
with h5py.File(sys.argv[1], "w", driver="mpio", comm=comm) as f:
    d = f.create_dataset("x", (size, 4), dtype="i8")
    with d.collective:
        d[rank] = numpy.arange(4) + 10 * rank
"""

READ_H5 = """\
import sys
import h5py
with h5py.File(sys.argv[1], "r") as f:
    print(h5py.get_config().mpi, f["x"][()].tolist())
"""


def test_h5py_writes_one_file_from_two_ranks(stack: Stack, tmp_path: Path) -> None:
    target = tmp_path / "two.h5"
    done = stack.run(*MPIEXEC, stack.python, "-c", WRITE_H5, target)
    assert done.returncode == 0, done.stderr
    read = stack.run(stack.python, "-c", READ_H5, target)
    assert read.returncode == 0, read.stderr
    assert read.stdout.split(" ", 1) == ["True", "[[0, 1, 2, 3], [10, 11, 12, 13]]\n"]


def test_h5py_links_the_prefix_hdf5_built_for_the_target(stack: Stack) -> None:
    extension = next(stack.prefix.glob("lib/python3*/site-packages/h5py/defs.cpython-*.so"))
    ldd = subprocess.run(["ldd", extension], capture_output=True, text=True, check=True).stdout
    # the path ldd resolved, which a relative RPATH ($ORIGIN/...) gives with `..` in it
    found = re.search(r"libhdf5\.so\S* => (\S+)", ldd)
    assert found, ldd
    assert Path(os.path.realpath(found[1])).parent == Path(os.path.realpath(stack.prefix / "lib")), ldd
    library = next((stack.prefix / "lib").glob("libhdf5.so.*.*"))
    flags = subprocess.run(["readelf", "-p", ".GCC.command.line", library], capture_output=True, text=True)
    assert detect_host().arch_flags("cc").split()[0] in flags.stdout
    settings = (stack.prefix / "lib" / "libhdf5.settings").read_text()
    assert re.search(r"Parallel HDF5: yes", settings), settings


WRITE_NC = r"""
#include <stdio.h>
#include <mpi.h>
#include <netcdf.h>
#include <netcdf_par.h>
#define CHECK(e) do { int s_ = (e); if (s_) { \
    fprintf(stderr, "%s: %s\n", #e, nc_strerror(s_)); return 1; } } while (0)
int main(int argc, char **argv) {
    int rank, size, ncid, dim, var, data[4];
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CHECK(nc_create_par(argv[1], NC_NETCDF4 | NC_CLOBBER, MPI_COMM_WORLD, MPI_INFO_NULL, &ncid));
    CHECK(nc_def_dim(ncid, "x", 4 * size, &dim));
    CHECK(nc_def_var(ncid, "v", NC_INT, 1, &dim, &var));
    CHECK(nc_enddef(ncid));
    CHECK(nc_var_par_access(ncid, var, NC_COLLECTIVE));
    size_t start = 4 * rank, count = 4;
    for (int i = 0; i < 4; i++) data[i] = 100 * rank + i;
    CHECK(nc_put_vara_int(ncid, var, &start, &count, data));
    CHECK(nc_close(ncid));
    MPI_Finalize();
    return 0;
}
"""


def test_netcdf_file_written_in_parallel(stack: Stack, tmp_path: Path) -> None:
    assert stack.run("nc-config", "--has-parallel4").stdout.strip() == "yes"
    source = tmp_path / "write.c"
    source.write_text(WRITE_NC)
    lib = stack.prefix / "lib"
    built = stack.run(
        "mpicc", f"-I{stack.prefix / 'include'}", source, "-o", tmp_path / "write",
        f"-L{lib}", f"-Wl,-rpath,{lib}", "-lnetcdf",
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    target = tmp_path / "par.nc"
    done = stack.run(*MPIEXEC, tmp_path / "write", target)
    assert done.returncode == 0, done.stdout + done.stderr
    dump = stack.run("ncdump", target)
    assert dump.returncode == 0, dump.stderr
    values = re.search(r"v = ([^;]*);", dump.stdout)
    assert values, dump.stdout
    assert [int(v) for v in values.group(1).split(",")] == [0, 1, 2, 3, 100, 101, 102, 103]


DGEMM = r"""
#include <math.h>
#include <stdio.h>
#include <cblas.h>
char *openblas_get_corename(void);
char *openblas_get_config(void);
#define M 67
#define K 45
#define N 53
int main(void) {
    static double a[M * K], b[K * N], c[M * N], ref[M * N];
    unsigned s = 12345;
    for (int i = 0; i < M * K; i++) { s = s * 1103515245u + 12345u; a[i] = (s >> 16) % 1000 / 250.0 - 2; }
    for (int i = 0; i < K * N; i++) { s = s * 1103515245u + 12345u; b[i] = (s >> 16) % 1000 / 250.0 - 2; }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double t = 0;
            for (int k = 0; k < K; k++) t += a[i * K + k] * b[k * N + j];
            ref[i * N + j] = 1.5 * t;
        }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.5, a, K, b, N, 0.0, c, N);
    double err = 0, norm = 0;
    for (int i = 0; i < M * N; i++) { err = fmax(err, fabs(c[i] - ref[i])); norm = fmax(norm, fabs(ref[i])); }
    printf("%s|%s|%g|%g\n", openblas_get_corename(), openblas_get_config(), err, norm);
    return 0;
}
"""


def test_dgemm_matches_a_naive_loop_with_the_targets_kernels(stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "dgemm.c"
    source.write_text(DGEMM)
    lib = stack.prefix / "lib"
    built = stack.run(
        "gcc", f"-I{stack.prefix / 'include'}", source, "-o", tmp_path / "dgemm",
        f"-L{lib}", f"-Wl,-rpath,{lib}", "-lopenblas", "-lm",
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    done = stack.run(tmp_path / "dgemm")
    assert done.returncode == 0, done.stderr
    core, config, err, norm = done.stdout.strip().split("|")
    assert float(norm) > 1 and float(err) <= 1e-12 * float(norm), done.stdout
    assert "DYNAMIC_ARCH" not in config  # kernels fixed at build time, no run-time dispatch
    chosen = re.findall(r"\bTARGET=(\w+)", _log(stack, "openblas").split("=== openblas: install")[0])
    assert chosen and core.upper() == chosen[0], (core, chosen)


@pytest.mark.skipif(shutil.which("ldd") is None, reason="no ldd")
def test_a_rerun_builds_nothing(stack: Stack) -> None:
    env_file = stack.root.parent / "env.yml"
    path = f"{stack.python.parent}{os.pathsep}{os.environ['PATH']}"
    mirror = stack.root.parent / "mirror"
    again = pmpm(
        "system_install",
        stack.root,
        "--file",
        env_file,
        env={"PATH": path, "PMPM_SOURCE_MIRRORS": str(mirror)},
    )
    assert again.code == 0, again.text
    assert "up to date" in again.out and "building" not in again.out
