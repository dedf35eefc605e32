"""Every match-spec form conda and mamba accept is installed, with conda's meaning.

Each spec is written into an env file, read by pmpm and **solved** against a local channel of
genuine (empty, noarch) stand-in packages, and the solver must pick the record the spec selects
in conda: the highest matching version, the matching build, never a near miss. The forms come
from conda's ``tests/models/test_match_spec.py`` (``test_match_1``, ``test_canonical_string_forms``),
mamba's ``libmamba/tests/src/specs/test_match_spec.cpp`` and the real env files in
``../shared/realworld/envs``; a few are our own, to show the fuzzy/exact distinction.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pmpm.build.package import PackageMeta
from pmpm.conda import engine as conda
from pmpm.conda.channels import resolve_channels, spec_for_solver
from pmpm.errors import PmpmError
from pmpm.spec.envfile import load_env_file
from pmpm.spec.matchspec import canonical, parse
from tests.factories import LocalChannel

# name: [(version, build, build_number)]; the decoys (nompi builds with a higher build number,
# versions just outside a range) are what a wrong reading would pick.
PACKAGES: dict[str, list[tuple[str, str, int]]] = {
    "numpy": [
        ("1.6.2", "py27_0", 0),
        ("1.7.0", "py27_0", 0),
        ("1.7.1", "py26_0", 0),
        ("1.7.1", "py27_1", 1),
        ("1.8.0", "py27_0", 0),
        ("1.11.0", "py27_0", 0),
        ("1.11.3", "py27_0", 0),
        ("2.0.0", "py27_0", 0),
    ],
    "fftw": [("3.3.10", "mpi_openmpi_h1_1", 1), ("3.3.10", "nompi_h0_2", 2)],
    "libfoo": [("1.1.0", "h0_0", 0), ("1.1.0", "h1_1", 1), ("1.1.1", "h0_0", 0), ("1.2.0", "h0_0", 0)],
    "pytorch-cpu": [("1.13.0", "cpu_0", 0), ("1.13.1", "cpu_0", 0)],
    "kytea": [("0.1.4", "0", 0), ("0.2.0", "0", 0), ("0.3.0", "0", 0)],
    "_libgcc_mutex": [("0.1", "conda_forge", 0), ("0.1", "main", 1)],
    "disperse": [("v0.9.24", "0", 0), ("v0.9.3", "0", 0)],
    "python": [("3.11.4", "h0_3", 3), ("3.11.5", "h0_2", 2), ("3.12.1", "h0_1", 1)],
    "blas": [("1.0", "openblas_0", 0), ("1.0", "mkl_1", 1)],
    # `1.*.3` decoys: a higher 1.x not ending in .3, a 2.x ending in .3, a longer version
    "foo": [("1.2.3", "0", 0), ("1.5.3", "0", 0), ("1.5.4", "0", 0), ("2.0.3", "0", 0), ("1.6.3.1", "0", 0)],
}

# (spec as written in the env file, (version, build) the solver must pick)
CASES: list[tuple[str, tuple[str, str]]] = [
    # conda test_match_1 (the record there is numpy-1.7.1-py27_0; here there are neighbours)
    ("numpy 1.7*", ("1.7.1", "py27_1")),
    ("numpy 1.7.1", ("1.7.1", "py27_1")),
    ("numpy 1.7", ("1.7.0", "py27_0")),  # a bare version is exact: 1.7 == 1.7.0, not 1.7.1
    ("numpy >=1.5,<2", ("1.11.3", "py27_0")),
    ("numpy >=1.8,<1.9", ("1.8.0", "py27_0")),
    ("numpy >1.5,<1.8,!=1.7.1", ("1.7.0", "py27_0")),
    ("numpy >2|==1.7", ("1.7.0", "py27_0")),
    ("numpy <1.7|1.8*", ("1.8.0", "py27_0")),
    ("numpy ==1.7", ("1.7.0", "py27_0")),
    ("numpy ==1.7.1.0", ("1.7.1", "py27_1")),
    ("numpy==1.7.1.0.0", ("1.7.1", "py27_1")),
    ("numpy 1.6*|1.8*", ("1.8.0", "py27_0")),
    ("numpy 1.6.2|1.7.0", ("1.7.0", "py27_0")),
    ("numpy 1.7.1 py26_0", ("1.7.1", "py26_0")),
    ("numpy >1.7.1a,<1.8", ("1.7.1", "py27_1")),
    ("blas * openblas_0", ("1.0", "openblas_0")),
    # conda test_canonical_string_forms
    ("numpy=1.7", ("1.7.1", "py27_1")),
    ("numpy[version='1.7*']", ("1.7.1", "py27_1")),
    ("numpy[version=1.7.*]", ("1.7.1", "py27_1")),
    ("numpy[version='1.7']", ("1.7.0", "py27_0")),
    ("numpy[version='1.7|1.8']", ("1.8.0", "py27_0")),
    ("numpy=1.7.1=py26_0", ("1.7.1", "py26_0")),  # `conda list --export` / `env export` form
    ("numpy==1.7.1=py26_0", ("1.7.1", "py26_0")),
    ("numpy=1.7.*=py26*", ("1.7.1", "py26_0")),
    ("numpy!=2.0.0", ("1.11.3", "py27_0")),
    ("numpy ~=1.7.0", ("1.7.1", "py27_1")),
    ("numpy=1.10.*|1.11.0", ("1.11.0", "py27_0")),
    # fuzzy `=` against exact `==` (conda: `numpy=1.11` is 1.11.*)
    ("numpy=1.11", ("1.11.3", "py27_0")),
    ("numpy==1.11", ("1.11.0", "py27_0")),
    ("numpy=1.*", ("1.11.3", "py27_0")),
    ("numpy=*=py26*", ("1.7.1", "py26_0")),
    ("numpy * py26_0", ("1.7.1", "py26_0")),
    ("numpy>=1.7=py26*", ("1.7.1", "py26_0")),  # pangeo's `pytorch>=2.7.0=cuda12*` shape
    ("numpy[build_number=1]", ("1.7.1", "py27_1")),
    # the README's example and conda env export's form
    ("fftw=*=mpi_*", ("3.3.10", "mpi_openmpi_h1_1")),
    ("fftw", ("3.3.10", "nompi_h0_2")),
    ("fftw * nompi_*", ("3.3.10", "nompi_h0_2")),
    ("libfoo 1.1.0", ("1.1.0", "h1_1")),
    ("libfoo=1.1.0=h0_0", ("1.1.0", "h0_0")),
    ("libfoo 1.1.0 h0_0", ("1.1.0", "h0_0")),
    ("libfoo=1.1", ("1.1.1", "h0_0")),
    ("libfoo==1.1", ("1.1.0", "h1_1")),
    ("libfoo=1.1.0", ("1.1.0", "h1_1")),
    # mamba's MatchSpec parse tests
    ("pytorch-cpu = 1.13.0", ("1.13.0", "cpu_0")),
    ("kytea >=0.1.4, 0.2.0", ("0.2.0", "0")),
    ("_libgcc_mutex    0.1       conda_forge     ", ("0.1", "conda_forge")),
    ("_libgcc_mutex 0.1", ("0.1", "main")),
    ("disperse=v0.9.24", ("v0.9.24", "0")),
    ("disperse v0.9.24", ("v0.9.24", "0")),
    ("python[build_number=3]", ("3.11.4", "h0_3")),
    ("python[build_number='<=2']", ("3.12.1", "h0_1")),
    ("python > 3.11", ("3.12.1", "h0_1")),
    ("python=3.11", ("3.11.5", "h0_2")),
    ("python 3.11.*", ("3.11.5", "h0_2")),
    ("python[version='<3.12']", ("3.11.5", "h0_2")),
    # conda's regex versions and globs with an inner `*` (conda/models/version.py VersionSpec),
    # which py-rattler cannot read: expanded against the channel's versions before the solve
    ("numpy *.7.*", ("1.7.1", "py27_1")),
    ("foo 1.*.3", ("1.5.3", "0")),
    ("numpy ^1\\.7.*$", ("1.7.1", "py27_1")),
    ("numpy ^1\\.(6|8)\\.\\d+$", ("1.8.0", "py27_0")),  # not 1.11.x: a regex matches the whole string
    ("numpy ^1\\.(6|8)\\.\\d+$|1.7.0", ("1.8.0", "py27_0")),
    ("numpy ^1\\.(6|7)\\..*$ py26*", ("1.7.1", "py26_0")),  # the build part is kept
    ("numpy >=1,*.7.*", ("1.7.1", "py27_1")),
    ("numpy (*.6.*|*.7.*),<1.7.1", ("1.7.0", "py27_0")),
]

# Specs that must not solve: nothing in the channel matches them (a loose reading would pick one).
UNSATISFIABLE = [
    "numpy 1.7.2",
    "numpy==1.7.1.1",
    "fftw=*=mpi_mpich_*",
    "libfoo=1.1.0=h9_0",
    "numpy=1.7=py26_0",
]


# version patterns conda refuses too (VersionSpec's "regex specs must start with '^' and end
# with '$'", a regex that does not compile), and a glob py-rattler would read as a build string
INVALID_PATTERNS = ["numpy ^1\\.7", "numpy 1.7.*$", "numpy ^1\\.(7$", "numpy (*.7.*", "numpy=*.7.*"]


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> LocalChannel:
    channel = LocalChannel(tmp_path_factory.mktemp("standins") / "chan")
    for name, builds in PACKAGES.items():
        for version, build, number in builds:
            channel.add(PackageMeta(name, version, build, number, noarch="generic"), {})
    channel.index()
    return channel


def solve_env_file(folder: Path, channel: Path, spec_text: str):
    """Write an env file asking for one spec, read it as pmpm does, and solve it."""
    env = folder / "environment.yml"
    env.write_text(f"channels: [{channel}]\ndependencies:\n  - {json.dumps(spec_text)}\n", encoding="utf-8")
    spec = load_env_file(env)
    channels = resolve_channels(spec)
    specs = [spec_for_solver(d, base_dir=env.parent) for d in spec.dependencies]
    return spec, conda.solve(specs, channels, subdir=conda.host_subdir())


@pytest.mark.parametrize(("written", "picked"), CASES, ids=[c[0] for c in CASES])
def test_spec_form_solves_to_the_record_conda_selects(
    tmp_path: Path, standins: LocalChannel, written: str, picked: tuple[str, str]
) -> None:
    spec, records = solve_env_file(tmp_path, standins.path, written)
    [dep] = spec.dependencies
    chosen = [r for r in records if r.name.normalized == dep.name]
    assert [(str(r.version), str(r.build)) for r in chosen] == [picked], (dep, [str(r) for r in records])
    # the canonical form is stable: reading it again gives it back
    assert canonical(parse(dep.canonical)) == dep.canonical


@pytest.mark.parametrize("written", UNSATISFIABLE)
def test_spec_with_no_matching_record_is_not_solved(
    tmp_path: Path, standins: LocalChannel, written: str
) -> None:
    with pytest.raises(PmpmError) as info:
        solve_env_file(tmp_path, standins.path, written)
    assert "cannot be solved" in str(info.value)


def test_channel_forms_solve_against_the_named_channel(tmp_path: Path, standins: LocalChannel) -> None:
    """`CHANNEL::spec` and `spec[channel=...]` keep the spec's meaning and pin the channel."""
    for written in (
        f"{standins.path}::fftw=*=mpi_*",
        f"{standins.url}::libfoo 1.1.0",
        f"numpy[channel='{standins.url}',version='1.7']",
        f"{standins.url}::numpy ^1\\.7\\.1$ py27*",
    ):
        spec, records = solve_env_file(tmp_path, standins.path, written)
        [dep] = spec.dependencies
        assert dep.channel is not None, written
        [record] = [r for r in records if r.name.normalized == dep.name]
        assert record.channel.rstrip("/") == standins.url.rstrip("/")
        assert (record.name.normalized, str(record.version), str(record.build)) in {
            ("fftw", "3.3.10", "mpi_openmpi_h1_1"),
            ("libfoo", "1.1.0", "h1_1"),
            ("numpy", "1.7.0", "py27_0"),
            ("numpy", "1.7.1", "py27_1"),
        }, written


def test_recipe_and_constraint_specs_are_read_leniently(standins: LocalChannel) -> None:
    """Specs reaching the solve as strings (a recipe's `requires: conda:`, MPI constraints)
    get the same reading as the env file's."""
    from pmpm.conda.channels import resolve_one

    channels = resolve_one(str(standins.path), alias="file:///nowhere/")
    records = conda.solve(
        ["fftw=*=mpi_*", "numpy=1.7"], channels, subdir=conda.host_subdir(), constraints=["libfoo 1.1.0"]
    )
    assert {(r.name.normalized, str(r.version), str(r.build)) for r in records} == {
        ("fftw", "3.3.10", "mpi_openmpi_h1_1"),
        ("numpy", "1.7.1", "py27_1"),
    }


def test_invalid_spec_reaching_the_solve_is_a_user_error(standins: LocalChannel) -> None:
    from pmpm.conda.channels import resolve_one

    channels = resolve_one(str(standins.path), alias="file:///nowhere/")
    with pytest.raises(PmpmError) as info:
        conda.solve(["numpy >=>1"], channels, subdir=conda.host_subdir())
    assert str(info.value).startswith("invalid package spec `numpy >=>1`")
    assert "requires: conda:" in str(info.value)


@pytest.mark.parametrize("written", INVALID_PATTERNS)
def test_invalid_version_pattern_is_refused_with_its_line(tmp_path: Path, written: str) -> None:
    env = tmp_path / "environment.yml"
    env.write_text(f"dependencies:\n  - python\n  - {json.dumps(written)}\n", encoding="utf-8")
    with pytest.raises(PmpmError) as info:
        load_env_file(env)
    assert str(info.value).startswith(f"{env}:3: invalid package spec `{written}`")


@pytest.mark.parametrize("written", ["numpy *.7", "numpy ^1\\.9\\..*$ py27*", "foo 1.*.3 py26*"])
def test_version_pattern_nothing_matches_names_the_spec_and_line(
    tmp_path: Path, standins: LocalChannel, written: str
) -> None:
    """No record matches: the error names the spec, where it was written and what is there."""
    from clihelp import pmpm

    env = tmp_path / "environment.yml"
    env.write_text(
        f"channels: [{standins.path}]\ndependencies:\n  - {json.dumps(written)}\n", encoding="utf-8"
    )
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--dry-run")
    assert result.code != 0
    assert "Traceback" not in result.text, result.text
    name = written.split()[0]
    assert f"{env}:3: no version of {name} in the channels matches `{written}`" in result.text, result.text
    assert not (tmp_path / "p").exists()


def test_version_pattern_in_a_recipe_or_constraint_is_expanded(standins: LocalChannel) -> None:
    from pmpm.conda.channels import resolve_one

    channels = resolve_one(str(standins.path), alias="file:///nowhere/")
    records = conda.solve(
        ["numpy ^1\\.(6|7)\\..*$"], channels, subdir=conda.host_subdir(), constraints=["numpy *.6.*"]
    )
    assert [(str(r.version), str(r.build)) for r in records] == [("1.6.2", "py27_0")]
    with pytest.raises(PmpmError) as info:
        conda.solve(["numpy"], channels, subdir=conda.host_subdir(), constraints=["numpy ^3\\..*$"])
    assert "no version of numpy in the channels matches `numpy ^3\\..*$`" in str(info.value)


def test_install_record_and_lock_keep_one_reading(tmp_path: Path, standins: LocalChannel) -> None:
    """The forms the solver used to refuse install; conda-meta and the lock keep the spec as
    the solve read it (canonical), and a rebuild from the lock installs the same records."""
    from clihelp import pmpm

    from pmpm.record.lock import read_lock

    env = tmp_path / "environment.yml"
    env.write_text(
        f"channels: [{standins.path}]\ndependencies:\n  - fftw=*=mpi_*\n  - libfoo 1.1.0\n  - numpy=1.11\n",
        encoding="utf-8",
    )
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    canonical_specs = ["fftw * mpi_*", "libfoo ==1.1.0", "numpy 1.11.*"]
    installed = {r.name.normalized: r for r in conda.installed_records(prefix)}
    assert {n: (str(r.version), str(r.build)) for n, r in installed.items()} == {
        "fftw": ("3.3.10", "mpi_openmpi_h1_1"),
        "libfoo": ("1.1.0", "h1_1"),
        "numpy": ("1.11.3", "py27_0"),
    }
    assert sorted(s for r in installed.values() for s in r.requested_specs) == canonical_specs
    lock = tmp_path / "env.lock"
    assert pmpm("export", prefix, "-o", lock).code == 0
    section, _ = read_lock(lock)
    assert section["requested"] == canonical_specs
    again = tmp_path / "again"
    result = pmpm("conda_install", again, "--lock", lock)
    assert result.code == 0, result.text
    rebuilt = {r.name.normalized: (str(r.version), str(r.build)) for r in conda.installed_records(again)}
    assert rebuilt == {n: (str(r.version), str(r.build)) for n, r in installed.items()}


def test_version_pattern_install_record_history_and_lock(tmp_path: Path, standins: LocalChannel) -> None:
    """A regex/glob version installs conda's choice. conda's requested specs (conda-meta/history)
    and the lock keep the spec as written, which conda reads with the same meaning; a record's
    `requested_specs` (py-rattler cannot hold a regex) get the solved version; a rebuild from
    the lock expands the spec again and installs the same records."""
    from clihelp import pmpm

    from pmpm.conda import history
    from pmpm.record.lock import read_lock

    env = tmp_path / "environment.yml"
    env.write_text(
        f"channels: [{standins.path}]\ndependencies:\n  - numpy ^1\\.(6|7)\\..*$ py27*\n  - foo 1.*.3\n",
        encoding="utf-8",
    )
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    installed = {r.name.normalized: r for r in conda.installed_records(prefix)}
    assert {n: (str(r.version), str(r.build)) for n, r in installed.items()} == {
        "numpy": ("1.7.1", "py27_1"),
        "foo": ("1.5.3", "0"),
    }
    assert installed["numpy"].requested_specs == ["numpy ==1.7.1 py27*"]
    assert installed["foo"].requested_specs == ["foo ==1.5.3"]
    written = ["numpy ^1\\.(6|7)\\..*$ py27*", "foo 1.*.3"]
    assert sorted(history.requested(prefix).values()) == sorted(written)
    lock = tmp_path / "env.lock"
    assert pmpm("export", prefix, "-o", lock).code == 0
    section, _ = read_lock(lock)
    assert sorted(section["requested"]) == sorted(written)
    again = tmp_path / "again"
    result = pmpm("conda_install", again, "--lock", lock)
    assert result.code == 0, result.text
    rebuilt = {r.name.normalized: (str(r.version), str(r.build)) for r in conda.installed_records(again)}
    assert rebuilt == {n: (str(r.version), str(r.build)) for n, r in installed.items()}


def test_recipe_conda_requirements_in_conda_forms_join_the_solve(
    tmp_path: Path, standins: LocalChannel
) -> None:
    """A recipe's `requires: conda:` may use every form an env file may."""
    from clihelp import pmpm

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "mytool.yaml").write_text(
        'name: mytool\nversion: "1.0"\nsource:\n  path: ../src\n'
        'requires:\n  conda: ["fftw=*=mpi_*", "libfoo 1.1.0"]\n'
        'build:\n  system: script\n  script: mkdir -p "$DESTDIR$PREFIX/share"\n',
        encoding="utf-8",
    )
    env = tmp_path / "environment.yml"
    env.write_text(
        f"channels: [{standins.path}]\ndependencies:\n  - numpy=1.11\n"
        "_pmpm:\n  recipes: [recipes]\n  packages: [mytool]\n",
        encoding="utf-8",
    )
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--dry-run")
    assert result.code == 0, result.text
    for line in (
        "+ fftw 3.3.10-mpi_openmpi_h1_1",
        "+ libfoo 1.1.0-h1_1",
        "+ numpy 1.11.3-py27_0",
        "mytool 1.0: new",
    ):
        assert line in result.out, result.out
    assert not (tmp_path / "p").exists()
