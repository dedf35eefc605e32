"""The HPC recipes rendered for several targets and options, without building (fast tier).

The builds themselves are in ``test_hpc_stack.py`` (slow); here the choices the recipes make
from the target and the options are checked for CPUs this machine is not: OpenBLAS's ``TARGET``
from archspec's name or features, parallel HDF5 and netCDF switched by ``mpi``.
"""

from __future__ import annotations

from typing import Any

import archspec.cpu
import pytest

from pmpm.build.recipe import RecipeBook, load_data, render, resolve_options

MPI = {"cc": "/opt/mpi/bin/mpicc", "fc": "/opt/mpi/bin/mpifort", "vendor": "Open MPI"}


def _target(name: str) -> dict[str, Any]:
    micro = archspec.cpu.TARGETS[name]
    features = sorted(micro.features)
    return {"name": name, "vendor": micro.vendor, "family": str(micro.family), "features": features}


def _args(recipe: str, target: str = "x86_64", **options: Any) -> list[str]:
    source = RecipeBook().find(recipe)
    context = {
        "target": _target(target),
        "mpi": MPI,
        "compilers": {"cc": "/usr/bin/gcc", "fc": "/usr/bin/gfortran"},
        "flags": {"cflags": "-O2"},
        "prefix": "/p",
        "jobs": 2,
    }
    data = load_data(source, context)
    chosen = resolve_options(data, options, origin=source.origin, where=None)
    rendered = render(data, {**context, "options": chosen}, origin=source.origin)
    return rendered.args


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("icelake", "TARGET=SKYLAKEX"),
        ("skylake_avx512", "TARGET=SKYLAKEX"),
        ("haswell", "TARGET=HASWELL"),
        ("zen2", "TARGET=ZEN"),
        ("sandybridge", "TARGET=SANDYBRIDGE"),
        ("x86_64_v3", "TARGET=HASWELL"),
        ("x86_64", "TARGET=OPTERON"),  # baseline x86-64: SSE2 kernels, no SSE3
        ("neoverse_n1", "TARGET=NEOVERSEN1"),
        ("power9le", "TARGET=POWER9"),
    ],
)
def test_openblas_target_follows_the_archspec_target(target: str, expected: str) -> None:
    args = _args("openblas", target)
    assert expected in args and "DYNAMIC_ARCH=0" in args


def test_openblas_runtime_dispatch_only_when_asked() -> None:
    args = _args("openblas", "icelake", dynamic_arch=True)
    assert "DYNAMIC_ARCH=1" in args and not any(a.startswith("TARGET=") for a in args)
    lean = _args("openblas", "icelake", lapack=False, fortran=False)
    assert {"NO_LAPACK=1", "NOFORTRAN=1"} <= set(lean) and not any(a.startswith("FC=") for a in lean)


def test_parallel_hdf5_and_netcdf_use_the_chosen_mpi() -> None:
    serial = _args("hdf5")
    assert "--enable-parallel" not in serial and not any(a.startswith("CC=") for a in serial)
    parallel = _args("hdf5", mpi=True, tools=False)
    assert {"--enable-parallel", f"CC={MPI['cc']}", "--disable-tools", "--enable-hl"} <= set(parallel)
    assert "--disable-parallel4" in _args("netcdf-c")
    assert {"--enable-parallel4", f"CC={MPI['cc']}"} <= set(_args("netcdf-c", mpi=True))


def test_h5py_builds_against_the_prefix_hdf5_with_mpi_when_asked() -> None:
    source = RecipeBook().find("h5py")
    context = {
        "mpi": MPI,
        "compilers": {"cc": "/usr/bin/gcc"},
        "prefix": "/p",
        "python": {"executable": "/usr/bin/python3"},
        "version": "3.11.0",
    }
    data = load_data(source, context)
    for mpi, needs, cc in ((False, ["hdf5"], "/usr/bin/gcc"), (True, ["hdf5", "mpi4py"], MPI["cc"])):
        options = resolve_options(data, {"mpi": mpi}, origin=source.origin, where=None)
        recipe = render(data, {**context, "options": options}, origin=source.origin)
        assert recipe.requires_recipes == needs
        assert recipe.env["HDF5_DIR"] == "/p" and recipe.env["CC"] == cc
        assert recipe.env["HDF5_MPI"] == ("ON" if mpi else "OFF")
        assert recipe.script and '"/usr/bin/python3" -m pip wheel' in recipe.script
