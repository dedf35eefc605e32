"""Environment files collected from real projects must load, or fail with file:line.

The collection lives outside the repository (``../shared/realworld/envs``); without it this module
is skipped rather than passing vacuously.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pmpm.errors import PmpmError
from pmpm.spec.envfile import load_env_file
from pmpm.spec.model import EnvSpec

ENVS = (Path(__file__).resolve().parents[2].parent / "shared" / "realworld" / "envs").resolve()

if not ENVS.is_dir():
    pytest.skip(f"real-world env files not found at {ENVS}", allow_module_level=True)

FILES = sorted(p for p in ENVS.rglob("*") if p.is_file())

# Files that must be rejected, and why.
EXPECTED_FAILURES = {
    # a Jinja template: `- "{{ local-package }}"` is filled in by xarray's doc build before use
    "xarray--doc-environment_template.yml": "template placeholder",
}


def _load(name: str) -> EnvSpec:
    (path,) = [p for p in FILES if p.name == name]
    return load_env_file(path, subdir="linux-64")


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ENVS)) for p in FILES])
def test_realworld_file(path: Path) -> None:
    if path.name in EXPECTED_FAILURES:
        with pytest.raises(PmpmError) as info:
            load_env_file(path, subdir="linux-64")
        text = str(info.value)
        assert re.search(rf"{re.escape(str(path))}:\d+: ", text), text
        assert EXPECTED_FAILURES[path.name] in text
        return
    spec = load_env_file(path, subdir="linux-64")
    lines = path.read_text(encoding="utf-8").splitlines()
    if spec.explicit:
        assert spec.dependencies == [] and spec.channels == []
        assert all(re.match(r"^https?://\S+\.(conda|tar\.bz2)(#\S+)?$", url) for url in spec.explicit)
        assert len(spec.explicit) == sum(1 for line in lines if line.startswith(("http://", "https://")))
        return
    assert spec.dependencies
    for dep in spec.dependencies:
        assert dep.name in lines[dep.line - 1].lower(), (dep, lines[dep.line - 1])
    for req in spec.pip:
        assert req.text in lines[req.line - 1]
    for channel in spec.channels:
        assert channel.text in lines[channel.line - 1]


def test_every_file_is_covered() -> None:
    assert len(FILES) >= 30
    assert set(EXPECTED_FAILURES) <= {p.name for p in FILES}


def test_hermes_delta_variables_and_build_strings() -> None:
    spec = _load("hermes_delta--environment.yml")
    assert spec.variables == {"CC": "mpicc", "CXX": "mpicxx", "LDFLAGS": "-shared"}
    assert [c.text for c in spec.channels] == ["conda-forge", "anaconda"]
    by_name = {d.name: d.spec for d in spec.dependencies}
    assert by_name["libnetcdf"] == "libnetcdf=*=mpi_*"
    assert by_name["netcdf4"] == "netCDF4=*=mpi_*"
    assert by_name["mpi4py"] == "mpi4py ~=3.1.4"
    # `pytest` and `pytest>=7.2.1` are both listed; the pinned one wins, with a note
    assert by_name["pytest"] == "pytest>=7.2.1"
    assert any("pytest" in note for note in spec.pmpm.notes)


def test_nf_core_channel_specs() -> None:
    spec = _load("nf-core-rnaseq--modules-nf-core-bowtie2-align-environment.yml")
    assert [(d.channel, d.name) for d in spec.dependencies] == [
        ("bioconda", "bowtie2"),
        ("bioconda", "htslib"),
        ("bioconda", "samtools"),
        ("conda-forge", "pigz"),
    ]
    deseq = _load("nf-core-rnaseq--modules-local-deseq2_qc-environment.yml")
    assert {d.channel for d in deseq.dependencies} == {"conda-forge", "bioconda"}
    assert deseq.line_of_dependency("bioconductor-deseq2") == 10


def test_xarray_pip_entries_and_nodefaults() -> None:
    spec = _load("xarray--ci-requirements-environment.yml")
    assert spec.nodefaults is True
    assert [c.text for c in spec.channels] == ["conda-forge"]
    assert [p.text for p in spec.pip] == ["jax", "types-defusedxml", "types-pexpect"]
    assert spec.pip_line is not None and spec.pip[0].line == spec.pip_line + 1


def test_mamba_selectors_on_linux_and_windows() -> None:
    (path,) = [p for p in FILES if p.name == "env_2.yaml"]
    linux = load_env_file(path, subdir="linux-64")
    assert [d.name for d in linux.dependencies] == ["test1-unix", "test1-linux", "test2-linux", "test4"]
    windows = load_env_file(path, subdir="win-64")
    assert [d.name for d in windows.dependencies] == ["test1-win", "test4"]


def test_extra_white_space_is_normalised() -> None:
    spec = _load("env-extra-white-space.yaml")
    assert [d.spec for d in spec.dependencies] == [
        "python >3.11",
        "numpy <2.0",
        "scipy >=1.5.0,<2.0.0",
        "scikit-learn >1.0.0",
    ]


def test_editable_pip_lines_are_kept() -> None:
    spec = _load("asymmetric_vqgan.environment.yaml")
    texts = [p.text for p in spec.pip]
    assert "-e ." in texts
    assert "-e git+https://github.com/openai/CLIP.git@main#egg=clip" in texts


def test_conda_lock_platforms_and_category() -> None:
    assert _load("environment.yml").platforms == [
        "linux-64",
        "linux-aarch64",
        "linux-ppc64le",
        "osx-64",
        "osx-arm64",
        "win-64",
    ]
    dev = _load("conda_lock_dev.environment.yaml")
    assert dev.nodefaults is True
    assert any("category" in note for note in dev.pmpm.notes)


def test_explicit_lists_keep_checksums() -> None:
    spec = _load("xtensor_linux-64.txt")
    assert len(spec.explicit) == 7 and spec.platforms == ["linux-64"]
    assert spec.explicit[-1].endswith("xtensor-0.21.8-hc9558a2_0.tar.bz2#1030174db5c183f3afb4181a0a02873d")


def test_pandas_repeated_packages_are_merged() -> None:
    spec = _load("pandas--environment.yml")
    names = [d.name for d in spec.dependencies]
    assert len(names) == len(set(names))
    assert spec.line_of_dependency("jinja2") == 32
