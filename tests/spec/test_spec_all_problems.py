"""Every problem of an env file is reported in one run, each with its line.

A saved env file of the original pmpm carries several keys pmpm refuses; fixing them one run at
a time took six runs. The readers now collect what they refuse and raise one error listing all.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from pmpm.errors import PmpmError
from pmpm.spec.envfile import load_env_file
from tests.clihelp import pmpm

# what the original pmpm wrote when it saved an environment (its keys, its empty prefix names)
SAVED_BY_ORIGINAL = """\
name: cmb
channels:
  - conda-forge
dependencies:
  - python=3.10
  - numpy
_pmpm:
  arch: native
  fast_update: true
  nomkl: false
  update: false
  sub_platform: cori
  download_prefix_name: download
  conda_prefix_name: ''
  compile_prefix_name: ''
  tune: skylake
  dependencies:
    - toast=toast3
"""


def write(folder: Path, text: str) -> Path:
    path = folder / "environment.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems(path: Path) -> list[tuple[int, str]]:
    with pytest.raises(PmpmError) as info:
        load_env_file(path, subdir="linux-64")
    text = str(info.value)
    return [
        (int(m.group(1)), m.group(2))
        for m in re.finditer(rf"^{re.escape(str(path))}:(\d+): (.*)$", text, re.M)
    ]


def test_saved_file_of_the_original_pmpm_reports_all_seven_at_once(tmp_path: Path) -> None:
    """Six refused keys, and the recipe nobody has written yet: one run names them all."""
    path = write(tmp_path, SAVED_BY_ORIGINAL)
    found = problems(path)
    assert [line for line, _ in found] == [9, 10, 11, 12, 13, 16, 18], found
    assert all(("_pmpm.fast_update" in m) == (line == 9) for line, m in found)
    assert "_pmpm.tune: skylake" in found[-2][1]
    assert found[-1][1] == "no recipe named 'toast'"


def test_unknown_recipes_come_with_the_other_problems(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    path = write(
        tmp_path,
        """\
        dependencies:
          - "foo >>=1"
        _pmpm:
          recipes: [mine, ./missing]
          packages: [zlib, nosuchlib]
          bogus: 1
        """,
    )
    result = pmpm("conda_install", tmp_path / "p", "--file", path, "--dry-run")
    assert result.code == 1 and "Traceback" not in result.err, result.text
    assert "3 problems in the environment file" in result.err, result.err
    assert f"{tmp_path / 'missing'} (which does not exist)" in result.err, result.err
    for expected in (
        f"{path}:2: invalid package spec `foo >>=1`",
        f"{path}:5: no recipe named 'nosuchlib'",
        f"{path}:6: unknown `_pmpm` key `bogus`",
    ):
        assert expected in result.err, result.err
    assert not (tmp_path / "p").exists()


def test_each_problem_keeps_its_hint(tmp_path: Path) -> None:
    path = write(tmp_path, SAVED_BY_ORIGINAL)
    with pytest.raises(PmpmError) as info:
        load_env_file(path, subdir="linux-64")
    text = str(info.value)
    assert text.startswith("7 problems in the environment file:")
    for hint in ("remove `fast_update`", "add `- nomkl` to `dependencies`", "`--update`", "source cache"):
        assert hint in text, hint


def test_problems_of_every_section_come_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        chanels: [conda-forge]
        dependencies:
          - numpy
          - "numpy >=>1"
          - sel(beos): x
          - scipy
        variables:
          1BAD: x
        _pmpm:
          packges: [zlib]
          target: [x]
          packages:
            - zlib
            - a=b
            - zlib
        extra: 1
        """,
    )
    found = problems(path)
    assert [line for line, _ in found] == [1, 4, 5, 8, 10, 11, 14, 15, 16], found
    with pytest.raises(PmpmError, match=r"did you mean `channels`\?"):
        load_env_file(path)


def test_one_problem_is_reported_as_before(tmp_path: Path) -> None:
    path = write(tmp_path, "dependencies: [numpy]\n_pmpm:\n  fast_update: true\n")
    with pytest.raises(PmpmError) as info:
        load_env_file(path)
    assert str(info.value).startswith(f"{path}:3: `_pmpm.fast_update` of the original pmpm is not supported")


def test_empty_prefix_names_of_the_original_pmpm_mean_one_prefix(tmp_path: Path) -> None:
    path = write(
        tmp_path, "dependencies: [numpy]\n_pmpm:\n  conda_prefix_name: ''\n  compile_prefix_name: ''\n"
    )
    spec = load_env_file(path)
    assert any("one prefix" in note and "line 3" in note for note in spec.pmpm.notes), spec.pmpm.notes
    assert any("line 4" in note for note in spec.pmpm.notes)


def test_every_unknown_recipe_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "_pmpm:\n  packages:\n    - nosuchlib\n    - zlib\n    - nosuchtool: {version: '1.0'}\n"
    )
    result = pmpm("conda_install", tmp_path / "p", "--file", path, "--dry-run")
    assert result.code == 1, result.text
    assert "Traceback" not in result.err
    assert f"{path}:3: no recipe named 'nosuchlib'" in result.err, result.err
    assert f"{path}:5: no recipe named 'nosuchtool'" in result.err, result.err
    assert not (tmp_path / "p").exists()


def test_conda_install_takes_the_empty_prefix_names(tmp_path: Path) -> None:
    (tmp_path / "chan").mkdir()
    path = write(
        tmp_path,
        f"channels: [{tmp_path / 'chan'}]\ndependencies: []\n_pmpm:\n"
        "  conda_prefix_name: ''\n  compile_prefix_name: ''\n",
    )
    result = pmpm("conda_install", tmp_path / "p", "--file", path, "--dry-run")
    assert result.code == 0, result.text
    assert "(line 4) of the original pmpm means one prefix" in result.text


def test_every_bad_key_of_a_settings_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "_pmpm:\n  compilers:\n    cc: gcc\n    cxx2: g++\n    fc: [gfortran]\n")
    found = problems(path)
    assert [line for line, _ in found] == [4, 5], found
    assert "unknown `_pmpm.compilers` key `cxx2`" in found[0][1]
