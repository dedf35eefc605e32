"""Independent packages build at the same time, within one ``--jobs`` budget."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pmpm.build.schedule import _width
from tests.clihelp import installed, pmpm, tree_digest

#: Each package announces it has started, then waits for the other one: built one after the
#: other, the first would wait in vain and fail, so success proves they ran side by side.
RENDEZVOUS = """\
name: {name}
version: '1.0'
source: {{path: ../src/{name}}}
{requires}build:
  system: script
  script: |
    echo "CPU_COUNT=$CPU_COUNT"
    touch {meet}/{name}.started
    for i in $(seq 1 300); do [ -e {meet}/{other}.started ] && break; sleep 0.1; done
    [ -e {meet}/{other}.started ] || {{ echo "{other} never started beside {name}"; exit 1; }}
    {fail}mkdir -p $STAGE_PREFIX/share/{name}
    cp $SRC_DIR/data.txt $STAGE_PREFIX/share/{name}/
"""


def _recipes(tmp_path: Path, *, fail: str = "", chain: bool = False, pause: bool = False) -> Path:
    meet = tmp_path / "meet"
    meet.mkdir()
    (tmp_path / "recipes").mkdir()
    for name, other in (("left", "right"), ("right", "left"), ("top", "top")):
        (tmp_path / "src" / name).mkdir(parents=True)
        (tmp_path / "src" / name / "data.txt").write_text(f"{name}\n")
        requires = "requires: {recipes: [left, right]}\n" if name == "top" else ""
        if chain and name == "right":
            requires = "requires: {recipes: [left]}\n"
        (tmp_path / "recipes" / f"{name}.yaml").write_text(
            RENDEZVOUS.format(
                name=name,
                other=other,
                meet=meet,
                requires=requires,
                fail="echo 'this package is broken' >&2; exit 3\n    "
                if name == fail
                else "sleep 1\n    "  # long enough for a live display to draw the running build
                if pause
                else "",
            )
        )
    env = tmp_path / "env.yml"
    env.write_text("dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages: [top]\n")
    return env


def test_independent_packages_build_side_by_side(tmp_path: Path) -> None:
    env = _recipes(tmp_path)
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env, "--jobs", "2")
    assert result.code == 0, result.text
    assert "building 3 packages, up to 2 at a time (1 jobs each)" in result.out
    assert set(installed(prefix)) == {"left", "right", "top"}
    # top requires both, so it starts only after both were installed
    assert result.out.index("building top") > max(
        result.out.index("installed left"), result.out.index("installed right")
    )
    assert (prefix / "share" / "right" / "data.txt").read_text() == "right\n"


def test_one_job_builds_one_package_at_a_time(tmp_path: Path) -> None:
    env = _recipes(tmp_path)
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--jobs", "1")
    assert result.code == 1  # the rendezvous cannot happen: proof that nothing ran beside
    assert "never started beside" in result.err
    assert not (tmp_path / "p").exists()


def test_a_failure_beside_a_running_build_keeps_the_prefix(tmp_path: Path) -> None:
    env = _recipes(tmp_path, fail="right")
    prefix = tmp_path / "p"
    prefix.mkdir()
    result = pmpm("conda_install", prefix, "--file", env, "--jobs", "2")
    assert result.code == 1
    assert "building right failed" in result.err and "this package is broken" in result.err
    assert "Traceback" not in result.text
    assert "building top" not in result.out  # nothing new starts after a failure
    assert tree_digest(prefix) == {}


@pytest.mark.parametrize(
    ("needs", "width"),
    [
        ({"a": set()}, 1),
        ({"a": set(), "b": set(), "c": {"a", "b"}}, 2),
        ({"a": set(), "b": {"a"}, "c": {"b"}}, 1),
        ({"a": set(), "b": set(), "c": set(), "d": {"a"}}, 3),
    ],
)
def test_width_is_the_widest_level(needs: dict[str, set[str]], width: int) -> None:
    assert _width(needs) == width


@pytest.mark.skipif(
    shutil.which("script") is None, reason="util-linux `script` (a pseudo-terminal) is missing"
)
def test_a_terminal_gets_live_progress(tmp_path: Path) -> None:
    """On a terminal (here a pseudo-terminal from util-linux `script`): a live line per running
    build (its phase and its log's last line) and an overall count, redrawn; the finished
    builds' lines stay."""
    env = _recipes(tmp_path, pause=True)
    typescript = tmp_path / "typescript"
    command = shlex.join(
        [
            sys.executable,
            "-m",
            "pmpm",
            "conda_install",
            str(tmp_path / "p"),
            "--file",
            str(env),
            "--jobs",
            "2",
        ]
    )
    done = subprocess.run(
        ["script", "-qec", command, str(typescript)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", typescript.read_text(errors="replace"))
    # a live line: the build's phase, a bar, its time, and the last line its log got
    assert re.search(r"left: script\s+[━╸╺]+\s+\d+:\d\d:\d\d\s+CPU_COUNT=\d", screen)
    assert re.search(r"compiled packages\s+[━╸╺]+\s+3/3", screen)  # the overall count, finished
    assert "installed right 1.0" in screen and "\x1b[" in typescript.read_text(errors="replace")
