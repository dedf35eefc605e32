"""The conda side of an external MPI: conda packages that need MPI get conda-forge's ``external``
build, so the solver installs no second MPI.

The channel has the *shape* of conda-forge's MPI packages (a real build ``h1a2b3c4_100`` and an
``external_0`` placeholder of ``mpich`` and ``openmpi``, the real one with the higher build number
as on conda-forge, and packages that depend on each);
their contents are placeholders, since conda-forge cannot be reached here. The MPIs on the
other side are the real Debian ones, identified by running their wrappers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pmpm.build.package import PackageMeta
from pmpm.host.mpi.choice import detect_mpi
from tests.clihelp import installed, pmpm

OPENMPI = "/usr/bin/mpicc.openmpi"
MPICH = "/usr/bin/mpicc.mpich"
needs_debian_mpis = pytest.mark.skipif(
    not (os.access(OPENMPI, os.X_OK) and os.access(MPICH, os.X_OK)),
    reason="Debian's Open MPI and MPICH are not both installed (CI installs them)",
)


@pytest.fixture
def mpi_channel(channel_factory):
    channel = channel_factory("mpi")
    for name, version in (("mpich", "4.0.2"), ("openmpi", "4.1.4")):
        channel.add(
            PackageMeta(name, version, "h1a2b3c4_100", build_number=100),
            {f"share/{name}/README": f"conda's own {name}\n"},
        )
        channel.add(
            PackageMeta(name, version, "external_0"),
            {f"share/{name}/EXTERNAL": "placeholder: the system's MPI is used\n"},
        )
        channel.add(
            PackageMeta(f"app-{name}", "1.0", f"mpi_{name}_0", depends=(name,)),
            {f"share/app-{name}/README": f"built against {name}\n"},
        )
    channel.add(PackageMeta("plain", "1.0", "0"), {"share/plain/README": "needs no MPI\n"})
    channel.index()
    return channel


def _env(tmp_path: Path, channel, deps: list[str], mpi: str | None) -> Path:
    env = tmp_path / "env.yml"
    text = f"channels: [{channel.path}]\ndependencies:\n" + "".join(f"  - {d}\n" for d in deps)
    if mpi is not None:
        text += f"_pmpm:\n  mpi: {mpi}\n"
    env.write_text(text)
    return env


def test_without_an_external_mpi_conda_installs_its_own(tmp_path: Path, mpi_channel) -> None:
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", _env(tmp_path, mpi_channel, ["app-mpich"], None))
    assert result.code == 0, result.text
    assert installed(prefix)["mpich"] == "4.0.2-h1a2b3c4_100"


@needs_debian_mpis
@pytest.mark.parametrize(("mpicc", "family"), [(MPICH, "mpich"), (OPENMPI, "openmpi")])
def test_an_external_mpi_gets_the_external_build(tmp_path: Path, mpi_channel, mpicc, family) -> None:
    prefix = tmp_path / "p"
    env = _env(tmp_path, mpi_channel, [f"app-{family}", "plain"], f"{{external: {{mpicc: {mpicc}}}}}")
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert installed(prefix)[family] == f"{detect_mpi(mpicc).version}-external_0"
    assert f"{family} * external_*" in result.out
    other = "openmpi" if family == "mpich" else "mpich"
    assert other not in installed(prefix)


@needs_debian_mpis
def test_the_constraint_installs_nothing_by_itself(tmp_path: Path, mpi_channel) -> None:
    prefix = tmp_path / "p"
    env = _env(tmp_path, mpi_channel, ["plain"], f"{{external: {{mpicc: {MPICH}}}}}")
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    assert set(installed(prefix)) == {"plain"}


@needs_debian_mpis
def test_a_package_needing_the_other_mpi_is_refused(tmp_path: Path, mpi_channel) -> None:
    prefix = tmp_path / "p"
    env = _env(tmp_path, mpi_channel, ["app-mpich"], f"{{external: {{mpicc: {OPENMPI}}}}}")
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1, result.text
    assert "app-mpich needs conda's mpich 4.0.2 (h1a2b3c4_100)" in result.err
    assert "Open MPI" in result.err and "mpi_openmpi_" in result.err  # the way out
    assert "Traceback" not in result.text
    assert not prefix.exists()


@pytest.mark.skipif(shutil.which("mpicc") is None, reason="no mpicc on PATH (CI installs Debian's MPIs)")
def test_system_install_uses_the_hosts_mpi_for_the_conda_stack_too(tmp_path: Path, mpi_channel) -> None:
    host = detect_mpi(shutil.which("mpicc"))
    assert host is not None
    family = {"Open MPI": "openmpi"}.get(host.vendor, "mpich")
    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", _env(tmp_path, mpi_channel, [f"app-{family}"], None))
    assert result.code == 0, result.text
    assert installed(root / "conda")[family].endswith("-external_0")
