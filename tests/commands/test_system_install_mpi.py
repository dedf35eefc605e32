"""``pmpm system_install`` with real MPIs: mpi4py from its PyPI sdist, built against each MPI.

Three MPIs that really differ: Debian's Open MPI and MPICH (installed by ``.ci/run``) and PyPI's
``mpich`` wheel in a venv of its own, standing in for a vendor MPI that lives outside the system.
There is no conda stack (``conda: false``): mpi4py is built for the host python found on PATH,
a venv per case. Each case checks what the issue asks: ``Get_library_version()`` names the chosen
MPI, ``mpiexec -n 2`` runs an allreduce through mpi4py, and ``ldd`` shows that the extension loads
that MPI's libraries and no other MPI's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from pmpm.host.mpi.choice import detect_mpi
from tests.clihelp import pmpm

pytestmark = pytest.mark.slow

#: Open MPI refuses to start as root without these; harmless otherwise
RUN_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
#: 1 + 2 = 3 only if both ranks took part; rank 0 alone prints (ranks' output may interleave)
ALLREDUCE = (
    "from mpi4py import MPI; c = MPI.COMM_WORLD; "
    "s = c.allreduce(c.Get_rank() + 1, op=MPI.SUM); "
    "c.Get_rank() == 0 and print(f'size={c.Get_size()} sum={s}')"
)


@dataclass
class Case:
    name: str
    venv: Path  # the "host" python3 that mpi4py is built for
    mpicc: str
    vendor: str  # what Get_library_version() must name
    libraries: set[str]  # real files of the chosen MPI's libraries


def _venv(root: Path, *packages: str) -> Path:
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    if packages:
        done = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                *packages,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"pip could not install {packages} from PyPI: {done.stderr.strip()[-300:]}")
    return venv


def _case(name: str, root: Path) -> Case:
    if name in ("debian-openmpi", "debian-mpich"):
        mpicc = "/usr/bin/mpicc.openmpi" if name == "debian-openmpi" else "/usr/bin/mpicc.mpich"
        if not os.access(mpicc, os.X_OK):
            pytest.skip(f"{mpicc} is not installed (CI installs Debian's libopenmpi-dev and libmpich-dev)")
        venv = _venv(root)
    else:
        venv = _venv(root, "mpich")
        mpicc = str(venv / "bin" / "mpicc")
    mpi = detect_mpi(mpicc)
    assert mpi is not None, f"{mpicc} was not recognised as an MPI"
    return Case(name, venv, mpicc, mpi.vendor, {os.path.realpath(p) for p in mpi.libraries})


@pytest.fixture(scope="module", params=["debian-openmpi", "debian-mpich", "pypi-mpich"])
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """mpi4py built by system_install against one MPI; (case, the install root, pmpm's output)."""
    case = _case(request.param, tmp_path_factory.mktemp(request.param))
    root = tmp_path_factory.mktemp(f"{request.param}-env") / "stack"
    env_file = root.parent / "env.yml"
    env_file.write_text(
        "dependencies: []\n"
        "_pmpm:\n"
        "  conda: false\n"
        f"  mpi: {{external: {{mpicc: {case.mpicc}}}}}\n"
        "  packages: [mpi4py]\n"
    )
    path = f"{case.venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    result = pmpm("system_install", root, "--file", env_file, env={"PATH": path, **RUN_ENV}, timeout=2400)
    if result.code != 0 and "pip" in result.text and "connection" in result.text.lower():
        pytest.skip(f"PyPI unreachable: {result.text[-300:]}")
    assert result.code == 0, result.text
    return case, root, result


def _site_packages(root: Path) -> Path:
    found = list((root / "compile" / "lib").glob("python3*/site-packages"))
    assert len(found) == 1, found
    return found[0]


def _python(
    case: Case, root: Path, *args: str, launcher: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    env = {**os.environ, **RUN_ENV, "PYTHONPATH": str(_site_packages(root))}
    return subprocess.run(
        [*launcher, str(case.venv / "bin" / "python"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_mpi4py_names_the_chosen_mpi(built) -> None:
    case, root, result = built
    assert "external: mpicc named in the env file" in result.out
    done = _python(case, root, "-c", "from mpi4py import MPI; print(MPI.Get_library_version())")
    assert done.returncode == 0, done.stderr
    assert case.vendor.split()[0] in done.stdout  # "Open MPI ..." / "MPICH Version: ..."
    # the compiled stack is a prefix with a conda record, and the record names this MPI
    records = [json.loads(p.read_text()) for p in (root / "compile" / "conda-meta").glob("mpi4py-*.json")]
    assert len(records) == 1 and records[0]["build"].startswith("pmpm_")
    inputs = json.loads((root / "compile" / "conda-meta" / "pmpm" / "builds" / "mpi4py.json").read_text())
    assert inputs["mpi"].startswith(case.vendor)
    # built for the host python found on PATH (named by the interpreter the venv runs)
    assert inputs["python"].startswith(os.path.realpath(case.venv / "bin" / "python") + " 3.")


def test_mpiexec_runs_an_allreduce_through_mpi4py(built) -> None:
    case, root, _ = built
    mpiexec = detect_mpi(case.mpicc).mpiexec
    launcher = (mpiexec, "-n", "2") + (("--oversubscribe",) if case.vendor == "Open MPI" else ())
    done = _python(case, root, "-c", ALLREDUCE, launcher=launcher)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["size=2", "sum=3"]


def test_the_extension_links_only_the_chosen_mpi(built) -> None:
    case, root, _ = built
    extension = next((_site_packages(root) / "mpi4py").glob("MPI.*.so"))
    out = subprocess.run(["ldd", str(extension)], capture_output=True, text=True, check=True).stdout
    assert "not found" not in out, out
    loaded = {os.path.realpath(m) for m in re.findall(r"=>\s+(/\S+)", out)}
    mpi_like = {p for p in loaded if re.match(r"lib(p?mpi|mpich|open-|open_)", os.path.basename(p))}
    assert mpi_like & case.libraries, (mpi_like, case.libraries)  # this MPI's libmpi is loaded ...
    others = {p for p in mpi_like if re.match(r"lib(mpi|mpich)[._]", os.path.basename(p))} - case.libraries
    assert not others, f"{case.name}: the extension also loads another MPI: {others}"


@pytest.mark.skipif(shutil.which("ldd") is None, reason="no ldd")
def test_a_rerun_builds_nothing(built) -> None:
    case, root, _ = built
    env_file = root.parent / "env.yml"
    path = f"{case.venv / 'bin'}{os.pathsep}{os.environ['PATH']}"
    again = pmpm("system_install", root, "--file", env_file, env={"PATH": path, **RUN_ENV})
    assert again.code == 0, again.text
    assert "up to date" in again.out and "building" not in again.out
