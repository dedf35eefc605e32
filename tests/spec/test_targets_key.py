"""``_pmpm.targets`` and ``--targets``: archspec names, ``host`` resolved, each once, not with ``target``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pmpm.errors import PmpmError
from pmpm.host.target import host_target_name
from pmpm.spec.model import PmpmSection
from pmpm.spec.targets import targets_for
from tests.spec.test_spec import fails, load


def test_targets_are_read_as_archspec_names(tmp_path: Path) -> None:
    spec = load(tmp_path, "dependencies: []\n_pmpm:\n  targets: [x86-64-v3, ZEN3, host]\n")
    assert spec.pmpm.targets == ["x86_64_v3", "zen3", host_target_name()]
    assert spec.pmpm.targets_line == 3 and spec.pmpm.target == "host"  # `target` left as it was
    assert targets_for(spec.pmpm, None) == ("x86_64_v3", "zen3", host_target_name())


@pytest.mark.parametrize(
    ("lines", "line", "said"),
    [
        ("  targets: [x86_64_v3, zen9]\n", 3, "unknown target `zen9` in `_pmpm.targets`; did you mean"),
        (
            "  targets:\n    - zen3\n    - zen3\n",
            5,
            "target `zen3` is listed twice in `_pmpm.targets` (lines 4 and 5)",
        ),
        ("  targets: []\n", 3, "`_pmpm.targets` is empty"),
        (
            "  target: zen3\n  targets: [zen2, zen3]\n",
            4,
            "`_pmpm.targets` and `_pmpm.target` (line 3) are both given",
        ),
        (
            "  arch: zen3\n  targets: [zen2, zen3]\n",
            4,
            "`_pmpm.targets` and `_pmpm.arch` (line 3) are both given",
        ),
        ("  targets: zen3\n", 3, "_pmpm.targets"),
    ],
)
def test_bad_targets_name_their_line(tmp_path: Path, lines: str, line: int, said: str) -> None:
    text = fails(tmp_path, "dependencies: []\n_pmpm:\n" + lines)
    assert f"environment.yml:{line}:" in text and said in text


def test_host_twice_is_a_duplicate_said_as_resolved(tmp_path: Path) -> None:
    here = host_target_name()
    text = fails(tmp_path, f"dependencies: []\n_pmpm:\n  targets: [{here}, host]\n")
    assert f"target `host` ({here} here) is listed twice" in text and "environment.yml:3:" in text


def test_the_option_overrides_the_file_and_is_checked_the_same_way() -> None:
    section = PmpmSection(targets=["zen2", "zen3"])
    assert targets_for(section, "x86-64-v2, host") == ("x86_64_v2", host_target_name())
    assert targets_for(PmpmSection(), None) == ()  # neither: the one `target`
    with pytest.raises(PmpmError, match="--targets: unknown target `nope`"):
        targets_for(section, "zen3,nope")
    with pytest.raises(PmpmError, match="is given twice"):
        targets_for(section, "zen3,zen3")
