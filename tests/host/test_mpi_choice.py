"""The run's MPI decision (pmpm.host.mpi.choice.decide -> MpiChoice), against Debian's real MPIs: made in one
place, typed, and kept across the conda solve when the solve cannot change it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pmpm.host.mpi.choice import MpiChoice, decide, external_before_solve

MPICH = "/usr/bin/mpicc.mpich"
needs_mpich = pytest.mark.skipif(
    not os.access(MPICH, os.X_OK), reason="Debian's MPICH is not installed (libmpich-dev mpich)"
)


def prefix_with(tmp_path: Path, wrapper: str | None) -> Path:
    """A prefix whose bin/mpicc is a real wrapper; only its location stands in for a conda MPI."""
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    if wrapper:
        (prefix / "bin" / "mpicc").symlink_to(wrapper)
    return prefix


def test_none_is_final_and_has_no_mpi(tmp_path: Path) -> None:
    choice = decide("none", system=False, base=None, prefix=prefix_with(tmp_path, None))
    assert (choice.kind, choice.mpi, choice.external, choice.final) == ("none", None, None, True)
    assert choice.reason.startswith("none:")


@needs_mpich
def test_a_named_external_mpi_is_decided_before_the_solve(tmp_path: Path) -> None:
    prefix = prefix_with(tmp_path, None)
    choice = decide({"external": {"mpicc": MPICH}}, system=False, base=None, prefix=prefix)
    assert choice.kind == "external" and choice.final
    assert choice.mpi is not None and choice.external is choice.mpi and choice.mpi.mpicc == MPICH
    asked: list[MpiChoice] = []

    def once() -> MpiChoice:
        asked.append(choice)
        return choice

    setting = {"external": {"mpicc": MPICH}}
    assert external_before_solve(setting, system=False, decide_now=once) is choice.mpi
    assert len(asked) == 1


@needs_mpich
def test_a_conda_mpi_waits_for_the_solve(tmp_path: Path) -> None:
    """conda_install's automatic choice depends on what the solve puts in PREFIX/bin: it is not
    asked for before the solve, and a choice made is marked as not final."""
    prefix = prefix_with(tmp_path, MPICH)
    choice = decide(None, system=False, base=None, prefix=prefix)
    assert choice.kind == "conda" and not choice.final and choice.external is None
    assert choice.mpi is not None and choice.mpi.provider == "conda"

    def never() -> MpiChoice:
        raise AssertionError("decided before the solve")

    assert external_before_solve(None, system=False, decide_now=never) is None
    assert external_before_solve("conda", system=False, decide_now=never) is None


@needs_mpich
def test_system_install_prefers_the_hosts_mpi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "system"
    system.mkdir()
    (system / "mpicc").symlink_to(MPICH)
    monkeypatch.setenv("PATH", f"{system}{os.pathsep}/usr/bin")
    base = prefix_with(tmp_path, None)
    choice = decide(None, system=True, base=base, prefix=tmp_path / "compile")
    assert choice.kind == "external" and choice.final
    assert choice.reason.startswith("auto (system_install): mpicc on PATH (")
    assert external_before_solve(None, system=True, decide_now=lambda: choice) is choice.mpi
