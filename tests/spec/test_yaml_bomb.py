"""Hostile YAML: nested aliases (the "billion laughs" shape) are refused at once, with file:line.

PyYAML composes such a file into a few dozen shared nodes; a reader that copies every alias
would build 9**9 values. The CLI runs in a subprocess with a timeout and a memory ceiling as
guards (a regression must fail, not take the machine down); nothing here measures time.
"""

from __future__ import annotations

import itertools
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from pmpm.errors import PmpmError
from pmpm.spec.yaml_lines import parse_yaml

LEVELS = "abcdefghi"


def billion_laughs() -> str:
    """Nine levels of nine aliases each, ending in `dependencies`: about 400 bytes."""
    lines = ["x-lol: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for previous, level in itertools.pairwise(LEVELS):
        lines.append(f"x-{level}: &{level} [{', '.join([f'*{previous}'] * 9)}]")
    lines.append(f"dependencies: *{LEVELS[-1]}")
    return "\n".join(lines) + "\n"


def _memory_ceiling() -> None:  # runs in the child: a runaway reader hits MemoryError, not the host
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def test_billion_laughs_is_refused_by_the_cli(tmp_path: Path) -> None:
    env = tmp_path / "bomb.yml"
    env.write_text(billion_laughs(), encoding="utf-8")
    assert len(env.read_bytes()) < 450
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pmpm",
                "conda_install",
                str(tmp_path / "p"),
                "--file",
                str(env),
                "--dry-run",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_memory_ceiling,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("pmpm did not refuse the alias bomb (still expanding after the guard timeout)")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(rf"{re.escape(str(env))}:\d+: .*alias", proc.stderr), proc.stderr
    assert not (tmp_path / "p").exists()


def test_shared_anchor_used_a_few_times_still_loads(tmp_path: Path) -> None:
    """Ordinary anchors (a list reused by two keys) keep working and keep their lines."""
    text = "base: &deps [numpy, scipy]\nother: *deps\nthird:\n  - *deps\n  - *deps\n"
    root = parse_yaml(text, tmp_path / "env.yml")
    assert root is not None
    assert [n.text for n in root.value["other"].value] == ["numpy", "scipy"]
    assert root.value["other"].line == 2
    assert [[n.text for n in item.value] for item in root.value["third"].value] == [["numpy", "scipy"]] * 2


def test_expansion_limit_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "env.yml"
    with pytest.raises(PmpmError) as info:
        parse_yaml(billion_laughs(), path)
    assert re.match(rf"{re.escape(str(path))}:\d+: ", str(info.value)), str(info.value)
    assert "alias" in str(info.value)
