"""Environment files → EnvSpec: every form conda, mamba, conda-lock and the original pmpm accept."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pmpm.errors import PmpmError
from pmpm.spec.envfile import load_env_file
from pmpm.spec.model import Dependency, EnvSpec, PackageRequest


def write(folder: Path, text: str, name: str = "environment.yml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load(folder: Path, text: str, *, subdir: str = "linux-64") -> EnvSpec:
    return load_env_file(write(folder, text), subdir=subdir)


def fails(folder: Path, text: str, *, subdir: str = "linux-64") -> str:
    with pytest.raises(PmpmError) as info:
        load(folder, text, subdir=subdir)
    return str(info.value)


# --- conda's environment.yml -----------------------------------------------------------------


def test_basic_file_keeps_names_and_lines(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        """
        name: demo
        channels:
          - conda-forge
        dependencies:
          - python=3.11
          # a comment line
          - numpy >=1.26
        """,
    )
    assert spec.path == (tmp_path / "environment.yml").resolve()
    assert spec.name == "demo"
    assert [(c.text, c.line) for c in spec.channels] == [("conda-forge", 3)]
    assert spec.dependencies == [
        Dependency("python=3.11", "python", None, 5, "python 3.11.*"),
        Dependency("numpy >=1.26", "numpy", None, 7, "numpy >=1.26"),
    ]
    assert spec.nodefaults is False
    assert spec.explicit == []
    assert spec.pmpm.target == "host" and spec.pmpm.conda is True and spec.pmpm.notes == []


@pytest.mark.parametrize(
    ("written", "spec", "name", "channel", "canonical"),
    [
        ("conda-forge::numpy", "conda-forge::numpy", "numpy", "conda-forge", "numpy"),
        ("bioconda::samtools=1.21", "bioconda::samtools=1.21", "samtools", "bioconda", "samtools 1.21.*"),
        (
            "conda-forge/linux-64::numpy",
            "conda-forge/linux-64::numpy",
            "numpy",
            "conda-forge",
            'numpy[subdir="linux-64"]',
        ),
        (
            "https://prefix.dev/conda-forge::numpy",
            "https://prefix.dev/conda-forge::numpy",
            "numpy",
            "https://prefix.dev/conda-forge",
            "numpy",
        ),
        ("pkg=1.2=build*", "pkg=1.2=build*", "pkg", None, "pkg ==1.2 build*"),
        ("pkg >=1,<2", "pkg >=1,<2", "pkg", None, "pkg >=1,<2"),
        ("pkg 1.2.*", "pkg 1.2.*", "pkg", None, "pkg 1.2.*"),
        ("python > 3.11", "python >3.11", "python", None, "python >3.11"),
        ("scipy   >=    1.5.0,  < 2.0.0", "scipy >=1.5.0,<2.0.0", "scipy", None, "scipy >=1.5.0,<2.0.0"),
        ("libnetcdf=*=mpi_*", "libnetcdf=*=mpi_*", "libnetcdf", None, "libnetcdf * mpi_*"),
        ("mpi4py ~= 3.1.4", "mpi4py ~=3.1.4", "mpi4py", None, "mpi4py ~=3.1.4"),
        ("pytorch>=2.7.0=cuda12*", "pytorch>=2.7.0=cuda12*", "pytorch", None, "pytorch >=2.7.0 cuda12*"),
        ("netCDF4=*=mpi_*", "netCDF4=*=mpi_*", "netcdf4", None, "netcdf4 * mpi_*"),
        (
            "sysroot_linux-64 2.17",
            "sysroot_linux-64 2.17",
            "sysroot_linux-64",
            None,
            "sysroot_linux-64 ==2.17",
        ),
        ("libfoo=1.1.0=h0_0", "libfoo=1.1.0=h0_0", "libfoo", None, "libfoo ==1.1.0 h0_0"),
        ("numpy=1.*", "numpy=1.*", "numpy", None, "numpy 1.*"),
    ],
)
def test_match_spec_forms(
    tmp_path: Path, written: str, spec: str, name: str, channel: str | None, canonical: str
) -> None:
    loaded = load(tmp_path, f'dependencies:\n  - "{written}"\n')
    assert loaded.dependencies == [Dependency(spec, name, channel, 2, canonical)]


def test_local_channel_in_spec_is_made_absolute(tmp_path: Path) -> None:
    (tmp_path / "chan").mkdir()
    spec = load(tmp_path, "dependencies:\n  - ./chan::mypkg\n")
    assert spec.dependencies[0].channel == str(tmp_path.resolve() / "chan")
    assert spec.dependencies[0].name == "mypkg"


def test_channels_names_urls_local_folders_and_nodefaults(tmp_path: Path) -> None:
    (tmp_path / "local-channel").mkdir()
    spec = load(
        tmp_path,
        """
        channels:
          - conda-forge
          - conda-forge/label/openmm_rc
          - https://prefix.dev/conda-forge
          - file:///srv/channel
          - ./local-channel
          - ~/my-channel
          - nodefaults
        dependencies: [numpy]
        """,
    )
    assert spec.nodefaults is True
    assert [(c.text, c.line) for c in spec.channels] == [
        ("conda-forge", 2),
        ("conda-forge/label/openmm_rc", 3),
        ("https://prefix.dev/conda-forge", 4),
        ("file:///srv/channel", 5),
        (str(tmp_path.resolve() / "local-channel"), 6),
        (str(Path("~/my-channel").expanduser().resolve()), 7),
    ]


def test_relative_channel_folder_resolves_against_the_env_file_not_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    envdir = tmp_path / "project"
    envdir.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(envdir, "channels: [../channels/site]\ndependencies: [numpy]\n")
    spec = load_env_file(path, subdir="linux-64")
    assert spec.channels[0].text == str(tmp_path.resolve() / "channels" / "site")


def test_pip_section_keeps_lines_as_text(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        """
        dependencies:
          - pip
          - pip:
              - --index-url https://example.org/simple
              - "-e git+https://github.com/CompVis/taming-transformers.git@master#egg=taming-transformers"
              - "-e ."
              - requests==2.31
        """,
    )
    assert spec.pip_line == 3
    assert [(p.text, p.line) for p in spec.pip] == [
        ("--index-url https://example.org/simple", 4),
        ("-e git+https://github.com/CompVis/taming-transformers.git@master#egg=taming-transformers", 5),
        ("-e .", 6),
        ("requests==2.31", 7),
    ]
    assert [d.name for d in spec.dependencies] == ["pip"]


def test_second_pip_section_is_an_error(tmp_path: Path) -> None:
    text = fails(tmp_path, "dependencies:\n  - pip:\n    - a\n  - pip:\n    - b\n")
    assert "environment.yml:4:" in text and "line 2" in text


def test_unknown_mapping_in_dependencies(tmp_path: Path) -> None:
    text = fails(tmp_path, "dependencies:\n  - numpy\n  - conda:\n    - x\n")
    assert "environment.yml:3:" in text and "`conda:`" in text


def test_variables_become_strings_as_written(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        """
        dependencies: [numpy]
        variables:
          CC: mpicc
          OMP_NUM_THREADS: 4
          VERSION: 1.10
          DEBUG: true
          QUOTED: "My Value"
        """,
    )
    assert spec.variables == {
        "CC": "mpicc",
        "OMP_NUM_THREADS": "4",
        "VERSION": "1.10",
        "DEBUG": "true",
        "QUOTED": "My Value",
    }
    assert spec.variables_line == 2


def test_variable_with_a_list_value_is_an_error(tmp_path: Path) -> None:
    text = fails(tmp_path, "dependencies: [numpy]\nvariables:\n  A: b\n  PATHS:\n    - /x\n")
    assert "environment.yml:4:" in text and "PATHS" in text and "a list" in text


def test_variables_must_be_a_mapping(tmp_path: Path) -> None:
    text = fails(tmp_path, "variables:\n  - A=b\n")
    assert "environment.yml:1:" in text and "mapping" in text


def test_prefix_platforms_and_category(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        """
        name: x
        category: dev
        prefix: /opt/envs/x
        dependencies: [numpy]
        platforms:
          - linux-64
          - osx-arm64
        """,
    )
    assert spec.prefix == "/opt/envs/x"
    assert spec.platforms == ["linux-64", "osx-arm64"]
    assert any("category" in note and "line 2" in note for note in spec.pmpm.notes)


def test_unknown_platform_suggests_a_subdir(tmp_path: Path) -> None:
    text = fails(tmp_path, "dependencies: [numpy]\nplatforms:\n  - linux64\n")
    assert "environment.yml:3:" in text and "linux64" in text and "linux-64" in text


def test_null_lists_are_empty(tmp_path: Path) -> None:
    spec = load(tmp_path, "name: x\nchannels:\ndependencies:\n  - numpy\n")
    assert spec.channels == [] and [d.name for d in spec.dependencies] == ["numpy"]


# --- selectors ---------------------------------------------------------------------------------

SELECTORS = """
dependencies:
  - sel(win): test1-win
  - sel(unix): test1-unix
  - sel(linux): test1-linux
  - sel(osx): test1-osx
  - sel(linux-64): only-linux-64
  - sel(linuxaarch64): only-linux-aarch64
  - sel(osx-arm64): only-osx-arm64
  - test4
"""


@pytest.mark.parametrize(
    ("subdir", "expected"),
    [
        ("linux-64", ["test1-unix", "test1-linux", "only-linux-64", "test4"]),
        ("linux-aarch64", ["test1-unix", "test1-linux", "only-linux-aarch64", "test4"]),
        ("osx-arm64", ["test1-unix", "test1-osx", "only-osx-arm64", "test4"]),
        ("win-64", ["test1-win", "test4"]),
    ],
)
def test_selectors_follow_the_subdir(tmp_path: Path, subdir: str, expected: list[str]) -> None:
    spec = load(tmp_path, SELECTORS, subdir=subdir)
    assert [d.name for d in spec.dependencies] == expected
    lines = SELECTORS.lstrip("\n").splitlines()
    for dep in spec.dependencies:
        assert dep.spec in lines[dep.line - 1]
        assert "sel(" not in dep.spec


def test_default_subdir_is_this_machine(tmp_path: Path) -> None:
    from rattler import Subdir

    spec = load_env_file(write(tmp_path, SELECTORS))
    family = str(Subdir.current()).split("-")[0]
    assert f"test1-{family}" in [d.name for d in spec.dependencies]


def test_unknown_selector_is_an_error(tmp_path: Path) -> None:
    text = fails(tmp_path, "dependencies:\n  - numpy\n  - sel(solaris): x\n")
    assert "environment.yml:3:" in text and "sel(solaris)" in text and "linux" in text


def test_unknown_subdir_argument(tmp_path: Path) -> None:
    with pytest.raises(PmpmError, match="unknown platform `beos-64`"):
        load(tmp_path, "dependencies: [numpy]\n", subdir="beos-64")


# --- dependency errors -------------------------------------------------------------------------


def test_invalid_match_spec_names_line_and_reason(tmp_path: Path) -> None:
    text = fails(tmp_path, "dependencies:\n  - numpy\n  - num*py >=1\n")
    assert "environment.yml:3:" in text
    assert "num*py" in text and "glob" in text  # rattler's reason


def test_template_placeholder_gets_a_hint(tmp_path: Path) -> None:
    text = fails(tmp_path, 'dependencies:\n  - "{{ local-package }}"\n')
    assert "environment.yml:2:" in text and "template" in text


def test_conflicting_duplicate_names_both_lines(tmp_path: Path) -> None:
    text = fails(tmp_path, "dependencies:\n  - numpy >=1.26\n  - scipy\n  - NumPy <2\n")
    assert "environment.yml:4:" in text
    assert "line 2" in text and "line 4" in text and "numpy" in text


def test_bare_duplicate_is_merged_with_a_note(tmp_path: Path) -> None:
    spec = load(tmp_path, "dependencies:\n  - pytest\n  - numpy\n  - pytest>=7.2.1\n  - numpy\n")
    assert [(d.spec, d.line) for d in spec.dependencies] == [("pytest>=7.2.1", 4), ("numpy", 3)]
    assert len(spec.pmpm.notes) == 2 and "lines 2 and 4" in spec.pmpm.notes[0]


def test_line_of_dependency(tmp_path: Path) -> None:
    spec = load(tmp_path, "dependencies:\n  - numpy\n  - conda-forge::NetCDF4 >=1.6\n")
    assert spec.line_of_dependency("netCDF4") == 3
    assert spec.line_of_dependency("numpy") == 2
    assert spec.line_of_dependency("scipy") is None


def test_dependency_must_be_a_string(tmp_path: Path) -> None:
    text = fails(tmp_path, "dependencies:\n  - numpy\n  -\n")
    assert "environment.yml:3:" in text and "empty" in text


def test_dependencies_must_be_a_list(tmp_path: Path) -> None:
    text = fails(tmp_path, "name: x\ndependencies: numpy\n")
    assert "environment.yml:2:" in text and "must be a list" in text


# --- file-level errors -------------------------------------------------------------------------


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    text = fails(tmp_path, "name: x\ndependencies:\n  - numpy\n   - scipy: [\n")
    assert "environment.yml:" in text and "invalid YAML" in text
    assert "Traceback" not in text


def test_tab_indentation_names_the_line(tmp_path: Path) -> None:
    text = fails(tmp_path, "name: x\ndependencies:\n\t- numpy\n")
    assert "environment.yml:3:" in text and "invalid YAML" in text


def test_control_character_names_the_line(tmp_path: Path) -> None:
    text = fails(tmp_path, "name: x\ndependencies:\n  - num\x07py\n")
    assert "environment.yml:3:" in text and "#x0007" in text


def test_recursive_alias_is_an_error(tmp_path: Path) -> None:
    text = fails(tmp_path, "name: x\ndependencies: &deps\n  - numpy\n  - *deps\n")
    assert "environment.yml:" in text and "alias" in text


def test_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        """
        name: &n demo
        prefix: *n
        dependencies: [numpy]
        _pmpm:
          compilers:
            <<: {cc: gcc, fc: gfortran}
            fc: ifx
        """,
    )
    assert spec.prefix == "demo"
    assert spec.pmpm.compilers == {"cc": "gcc", "fc": "ifx"}


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    text = fails(tmp_path, "dependencies: [a]\nname: x\ndependencies: [b]\n")
    assert "environment.yml:3:" in text and "lines 1 and 3" in text


def test_unknown_top_level_key_lists_the_allowed_keys(tmp_path: Path) -> None:
    text = fails(tmp_path, "name: x\ndependencies: [numpy]\nchanels: [conda-forge]\n")
    assert "environment.yml:3:" in text and "`chanels`" in text
    assert "did you mean `channels`" in text and "_pmpm" in text and "variables" in text


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "environment.yml"
    path.write_bytes(b"name: x\ndependencies:\n  - caf\xe9\n")
    with pytest.raises(PmpmError) as info:
        load_env_file(path, subdir="linux-64")
    assert "environment.yml:3:" in str(info.value) and "UTF-8" in str(info.value)


@pytest.mark.parametrize("content", ["", "   \n\n", "# only a comment\n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "environment.yml"
    path.write_text(content)
    with pytest.raises(PmpmError) as info:
        load_env_file(path, subdir="linux-64")
    assert str(path) in str(info.value)
    assert "empty" in str(info.value) or "nothing but comments" in str(info.value)


def test_top_level_list_is_rejected(tmp_path: Path) -> None:
    text = fails(tmp_path, "- numpy\n- scipy\n")
    assert "environment.yml:1:" in text and "top level must be a mapping" in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PmpmError, match="not found") as info:
        load_env_file(tmp_path / "nope.yml")
    assert "nope.yml" in str(info.value)


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(PmpmError, match="found a folder"):
        load_env_file(tmp_path)


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "environment.yml"
    path.write_bytes("\ufeffname: bom\ndependencies: [numpy]\n".encode())
    assert load_env_file(path, subdir="linux-64").name == "bom"


# --- @EXPLICIT files ---------------------------------------------------------------------------

EXPLICIT = """\
# This file may be used to create an environment using:
# platform: linux-64
@EXPLICIT
https://conda.anaconda.org/conda-forge/linux-64/_libgcc_mutex-0.1-conda_forge.tar.bz2#d7c89558ba9fa0495403155b64376d81

https://conda.anaconda.org/conda-forge/linux-64/xtl-0.6.21-h0efe328_0.conda#9eee90b98fd394db7a049792e67e1659
"""


def test_explicit_file(tmp_path: Path) -> None:
    spec = load_env_file(write(tmp_path, EXPLICIT, "explicit.txt"))
    assert spec.explicit == [
        "https://conda.anaconda.org/conda-forge/linux-64/_libgcc_mutex-0.1-conda_forge.tar.bz2"
        "#d7c89558ba9fa0495403155b64376d81",
        "https://conda.anaconda.org/conda-forge/linux-64/xtl-0.6.21-h0efe328_0.conda"
        "#9eee90b98fd394db7a049792e67e1659",
    ]
    assert spec.platforms == ["linux-64"]
    assert spec.dependencies == [] and spec.channels == [] and spec.name is None


def test_explicit_file_bad_line(tmp_path: Path) -> None:
    path = write(tmp_path, EXPLICIT + "numpy=1.26\n", "explicit.txt")
    with pytest.raises(PmpmError) as info:
        load_env_file(path)
    assert "explicit.txt:7:" in str(info.value) and "numpy=1.26" in str(info.value)


def test_explicit_file_without_urls(tmp_path: Path) -> None:
    with pytest.raises(PmpmError, match="no package URLs"):
        load_env_file(write(tmp_path, "# platform: linux-64\n@EXPLICIT\n", "explicit.txt"))


# --- _pmpm -------------------------------------------------------------------------------------


def test_full_pmpm_section(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        """
        dependencies: [numpy]
        _pmpm:
          target: x86_64_v3
          recipes: [recipes, /abs/recipes]
          packages:
            - libmadam
            - toast:
                version: 3.0.0
                path: ../src/toast
                cuda: false
                options: {with_mpi: true}
            - other:
                git: https://github.com/x/other
                ref: main
                target: generic
          conda: true
          backend: micromamba
          compilers: {cc: gcc-12, cxx: g++-12, fc: gfortran-12}
          mpi: {external: {mpicc: /usr/bin/mpicc}}
          cache: /scratch/pmpm-cache
          modules: {lmod: /opt/modulefiles, name: myenv}
          jupyter_kernel: true
          conda_prefix_name: c
          compile_prefix_name: k
          tests: false
        """,
    )
    section = spec.pmpm
    assert section.target == "x86_64_v3"
    assert section.recipes == [tmp_path.resolve() / "recipes", Path("/abs/recipes")]
    assert section.packages == [
        PackageRequest("libmadam", {}, 6),
        PackageRequest(
            "toast",
            {
                "version": "3.0.0",
                "path": tmp_path.resolve().parent / "src" / "toast",
                "cuda": False,
                "options": {"with_mpi": True},
            },
            7,
        ),
        PackageRequest(
            "other", {"git": "https://github.com/x/other", "ref": "main", "target": "generic"}, 12
        ),
    ]
    assert section.conda is True and section.backend == "micromamba"
    assert section.compilers == {"cc": "gcc-12", "cxx": "g++-12", "fc": "gfortran-12"}
    assert section.mpi == {"external": {"mpicc": "/usr/bin/mpicc"}}
    assert section.cache == "/scratch/pmpm-cache"
    assert section.modules == {"lmod": "/opt/modulefiles", "name": "myenv"}
    assert section.jupyter_kernel is True and section.tests is False
    assert (section.conda_prefix_name, section.compile_prefix_name) == ("c", "k")
    assert section.notes == []


def test_package_version_stays_as_written(tmp_path: Path) -> None:
    spec = load(tmp_path, "_pmpm:\n  packages:\n    - hdf5: {version: 1.10}\n")
    assert spec.pmpm.packages[0].options == {"version": "1.10"}


def test_unknown_pmpm_key_suggests_the_closest(tmp_path: Path) -> None:
    text = fails(tmp_path, "dependencies: [numpy]\n_pmpm:\n  target: host\n  pakages: [x]\n")
    assert "environment.yml:4:" in text and "`pakages`" in text
    assert "did you mean `packages`?" in text and "compile_prefix_name" in text


@pytest.mark.parametrize(
    ("body", "line", "expected"),
    [
        ("  target: [a]\n", 2, "must be a string"),
        ("  tests: maybe\n", 2, "must be true or false"),
        ("  jupyter_kernel: 1\n", 2, "must be true or false"),
        ("  recipes: folder\n", 2, "must be a list"),
        ("  compilers: [gcc]\n", 2, "must be a mapping"),
        ("  backend: pip\n", 2, "rattler, conda, mamba, micromamba"),
        ("  conda: yarn\n", 2, "rattler, conda, mamba, micromamba"),
        ("  mpi: openmpi\n", 2, "{module: NAME}"),
        ("  mpi: {external: /usr/bin/mpicc}\n", 2, "must be a mapping"),
        ("  mpi: {module: openmpi, external: {}}\n", 2, "{module: NAME}"),
        ("  conda_prefix_name: a/b\n", 2, "plain folder name"),
        ("  packages:\n    - a\n    - b: [x]\n", 4, "must be a mapping"),
    ],
)
def test_pmpm_type_errors(tmp_path: Path, body: str, line: int, expected: str) -> None:
    text = fails(tmp_path, "_pmpm:\n" + body)
    assert f"environment.yml:{line}:" in text
    assert expected in text


def test_unknown_compiler_key(tmp_path: Path) -> None:
    text = fails(tmp_path, "_pmpm:\n  compilers:\n    cc: gcc\n    f90: gfortran\n")
    assert "environment.yml:4:" in text and "`f90`" in text and "cc, cxx, fc" in text


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("none", "none"),
        ("conda", "conda"),
        ("external", "external"),
        ("{module: openmpi/4.1}", {"module": "openmpi/4.1"}),
        (
            "{external: {mpicc: /opt/mpi/bin/mpicc, mpifort: /opt/mpi/bin/mpifort}}",
            {"external": {"mpicc": "/opt/mpi/bin/mpicc", "mpifort": "/opt/mpi/bin/mpifort"}},
        ),
    ],
)
def test_mpi_shapes(tmp_path: Path, written: str, expected: object) -> None:
    assert load(tmp_path, f"_pmpm:\n  mpi: {written}\n").pmpm.mpi == expected


def test_package_entry_with_two_keys(tmp_path: Path) -> None:
    text = fails(tmp_path, "_pmpm:\n  packages:\n    - a: {}\n      b: {}\n")
    assert "environment.yml:3:" in text and "one `name: {options}`" in text


def test_package_listed_twice(tmp_path: Path) -> None:
    text = fails(tmp_path, "_pmpm:\n  packages:\n    - toast\n    - toast: {ref: x}\n")
    assert "environment.yml:4:" in text and "lines 3 and 4" in text


def test_package_with_equals_in_packages_says_what_to_write(tmp_path: Path) -> None:
    text = fails(tmp_path, "_pmpm:\n  packages:\n    - toast=toast3\n")
    assert "environment.yml:3:" in text and "toast: {ref: toast3}" in text


def test_package_path_and_git_conflict(tmp_path: Path) -> None:
    text = fails(tmp_path, "_pmpm:\n  packages:\n    - toast: {path: ., git: https://x/y}\n")
    assert "environment.yml:3:" in text and "both `path` and `git`" in text


def test_empty_pmpm_section_is_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "dependencies: [numpy]\n_pmpm:\n").pmpm.packages == []


# --- keys of the original pmpm -----------------------------------------------------------------

ORIGINAL = """
channels:
  - conda-forge
  - nodefaults
dependencies:
  - python=3.10
  - numpy
  - scipy
  - mpi4py
  - pip
  - pip:
    - pshmem
_pmpm:
  dependencies:
    - libmadam
    - toast=toast3
"""


def test_original_pmpm_file_loads_with_notes(tmp_path: Path) -> None:
    spec = load(tmp_path, ORIGINAL)
    assert spec.nodefaults and [c.text for c in spec.channels] == ["conda-forge"]
    assert [d.name for d in spec.dependencies] == ["python", "numpy", "scipy", "mpi4py", "pip"]
    assert [p.text for p in spec.pip] == ["pshmem"]
    assert spec.pmpm.packages == [
        PackageRequest("libmadam", {}, 14),
        PackageRequest("toast", {"ref": "toast3"}, 15),
    ]
    assert len(spec.pmpm.notes) == 1 and "`_pmpm.packages`" in spec.pmpm.notes[0]


def test_original_dependencies_and_packages_together(tmp_path: Path) -> None:
    text = fails(tmp_path, "_pmpm:\n  dependencies: [a]\n  packages: [b]\n")
    assert "environment.yml:3:" in text and "`_pmpm.dependencies` (line 2)" in text


@pytest.mark.parametrize(
    ("arch", "target"), [("native", "host"), ("x86-64-v3", "x86_64_v3"), ("skylake-avx512", "skylake_avx512")]
)
def test_arch_becomes_target(tmp_path: Path, arch: str, target: str) -> None:
    spec = load(tmp_path, f"_pmpm:\n  arch: {arch}\n")
    assert spec.pmpm.target == target
    assert "line 2" in spec.pmpm.notes[0] and f"target: {target}" in spec.pmpm.notes[0]


def test_arch_and_target_together(tmp_path: Path) -> None:
    text = fails(tmp_path, "_pmpm:\n  arch: native\n  target: zen3\n")
    assert "environment.yml:3:" in text and "both set `target`" in text


@pytest.mark.parametrize(
    "body",
    [
        "  tune: generic\n",
        "  tune: native\n",
        "  arch: x86-64-v3\n  tune: x86-64-v3\n",
        "  tune: haswell\n  arch: haswell\n",  # order does not matter
    ],
)
def test_tune_accepted_with_a_note(tmp_path: Path, body: str) -> None:
    spec = load(tmp_path, "_pmpm:\n" + body)
    assert any("-mtune from the target" in note for note in spec.pmpm.notes)


def test_tune_other_than_arch_is_rejected(tmp_path: Path) -> None:
    text = fails(tmp_path, "_pmpm:\n  arch: x86-64-v3\n  tune: skylake\n")
    assert "environment.yml:3:" in text and "target: skylake" in text


def test_python_version_becomes_a_dependency(tmp_path: Path) -> None:
    spec = load(tmp_path, "dependencies: [numpy]\n_pmpm:\n  python_version: 3.10\n")
    assert spec.dependencies[-1] == Dependency("python=3.10", "python", None, 3, "python 3.10.*")
    assert spec.line_of_dependency("python") == 3
    assert "python=3.10" in spec.pmpm.notes[0]


def test_python_version_ignored_when_python_is_listed(tmp_path: Path) -> None:
    spec = load(tmp_path, "dependencies: [python=3.12]\n_pmpm:\n  python_version: '3.10'\n")
    assert [d.spec for d in spec.dependencies] == ["python=3.12"]
    assert "ignored" in spec.pmpm.notes[0] and "line 1" in spec.pmpm.notes[0]


def test_prefix_names_and_skip_flags(tmp_path: Path) -> None:
    spec = load(
        tmp_path,
        "_pmpm:\n  conda_prefix_name: c\n  compile_prefix_name: k\n  skip_conda: true\n  skip_test: true\n",
    )
    assert (spec.pmpm.conda_prefix_name, spec.pmpm.compile_prefix_name) == ("c", "k")
    assert spec.pmpm.conda is False and spec.pmpm.tests is False
    assert len(spec.pmpm.notes) == 2


@pytest.mark.parametrize(
    ("value", "backend", "conda"),
    [("mamba", "mamba", True), ("conda", "conda", True), ("false", None, False)],
)
def test_conda_key_string_or_bool(tmp_path: Path, value: str, backend: str | None, conda: bool) -> None:
    spec = load(tmp_path, f"_pmpm:\n  conda: {value}\n")
    assert (spec.pmpm.backend, spec.pmpm.conda) == (backend, conda)


def test_conda_string_and_backend_conflict(tmp_path: Path) -> None:
    text = fails(tmp_path, "_pmpm:\n  conda: mamba\n  backend: rattler\n")
    assert "environment.yml:3:" in text and "both set `backend`" in text


@pytest.mark.parametrize(
    ("key", "gist"),
    [
        ("fast_update: true", "incremental rebuilds are automatic in pmpm; remove `fast_update`"),
        ("download_prefix_name: dl", "source cache"),
        ("sub_platform: cori", "remove `sub_platform`"),
        ("nomkl: true", "add `- nomkl` to `dependencies`"),
        ("update: true", "`--update`"),
    ],
)
def test_original_keys_without_counterpart(tmp_path: Path, key: str, gist: str) -> None:
    text = fails(tmp_path, f"dependencies: [numpy]\n_pmpm:\n  {key}\n")
    assert "environment.yml:3:" in text and gist in text


def test_original_dependency_entry_must_be_name_or_ref(tmp_path: Path) -> None:
    text = fails(tmp_path, "_pmpm:\n  dependencies:\n    - toast=\n")
    assert "environment.yml:3:" in text and "name=git-ref" in text
