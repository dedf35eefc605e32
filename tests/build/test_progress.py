"""What a run shows while it builds: each build's phases with their durations (plain output), the
phase and the last log line (live, on a terminal), and a closing summary of the compiled packages."""

from __future__ import annotations

import io
import re
from pathlib import Path

from rich.console import Console

from pmpm.progress import BuildProgress, duration, last_line
from tests.clihelp import log_of, pmpm

RECIPE = """\
name: tick
version: '1.0'
source: {path: ../src/tick}
build:
  system: script
  script: |
    echo "tick is being built"
    mkdir -p $STAGE_PREFIX/share/tick
    cp $SRC_DIR/data.txt $STAGE_PREFIX/share/tick/
"""
#: one plain line per finished phase: `  NAME: PHASE 1.2 s`
PHASE_LINE = re.compile(r"^  tick: (\w+) \d+\.\d s$", re.M)


def _project(root: Path) -> Path:
    (root / "src" / "tick").mkdir(parents=True)
    (root / "src" / "tick" / "data.txt").write_text(f"{root.name}\n")  # a key of this test's own
    (root / "recipes").mkdir()
    (root / "recipes" / "tick.yaml").write_text(RECIPE)
    env = root / "env.yml"
    env.write_text("dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages: [tick]\n")
    return env


def test_plain_output_gives_each_phase_its_duration_and_the_run_a_summary(tmp_path: Path) -> None:
    env = _project(tmp_path)
    first = pmpm("conda_install", tmp_path / "p1", "--file", env)
    assert first.code == 0, first.text
    lines = first.out.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("building tick 1.0 (script")))
    end = lines.index(next(line for line in lines if line.startswith("installed tick 1.0")))
    # in the order they ran, between the build's first and last line
    assert PHASE_LINE.findall("\n".join(lines[start:end])) == ["fetch", "prepare", "script", "pack", "link"]
    assert re.search(r"^compiled: 1 built, 0 from cache, 0 up to date in \d+\.\d s$", first.out, re.M)
    log = log_of(first.out, "tick").read_text()
    # the durations are kept in the build's log, after what each phase wrote there
    assert re.search(r"tick is being built\n=== tick: script took \d+\.\d s\n", log)
    assert re.findall(r"^=== tick: (\w+) took", log, re.M) == ["fetch", "prepare", "script", "pack", "link"]

    second = pmpm("conda_install", tmp_path / "p2", "--file", env)  # another prefix: the binary cache
    assert second.code == 0, second.text
    assert re.search(r"^compiled: 0 built, 1 from cache, 0 up to date in ", second.out, re.M)
    assert not PHASE_LINE.search(second.out)


def test_the_live_display_shows_the_phase_and_the_last_log_line(tmp_path: Path) -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)  # a terminal, recorded
    log = tmp_path / "demo.log"
    log.write_text("")
    said: list[str] = []
    with BuildProgress(2, said.append, live=True, console=console) as progress:
        progress.phase("demo", "configure", log)
        with log.open("a") as handle:
            handle.write("=== demo: configure\nchecking for a C compiler... gcc\n\n")
        progress.refresh_logs()  # what the display's reader does every few tenths of a second
        console.file.flush()
        progress._progress.refresh()
        drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
        assert re.search(r"demo: configure\s+[━╸╺]+\s+0:00:\d\d checking for a C compiler\.\.\. gcc", drawn)
        progress.phase("demo", "build")
        with log.open("a") as handle:
            handle.write("[ 50%] Building C object demo.o " + "x" * 300 + "\n")
        progress.refresh_logs()
        progress._progress.refresh()
        drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
        last = drawn.rsplit("demo: build", 1)[1].splitlines()[0]
        assert "[ 50%] Building C object demo.o" in last and last.rstrip().endswith("…")
        assert len(last) < 120  # cut to what fits on the terminal's line
        progress.finished("demo", "installed demo 1.0")
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "installed demo 1.0" in drawn and "compiled packages" in drawn
    assert not said  # live: nothing goes to the plain output
    # live or not, the phases' durations are kept in the build's log
    assert re.findall(r"^=== demo: (\w+) took \d+\.\d s$", log.read_text(), re.M) == ["configure", "build"]


def test_durations_read_as_people_say_them() -> None:
    assert [duration(s) for s in (0.04, 12.34, 72.4, 3725)] == ["0.0 s", "12.3 s", "1 min 12 s", "1 h 2 min"]


def test_the_last_line_is_read_from_the_end_of_a_large_log(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text("early line\n" * 200_000 + "almost done\r[100%] linking libdemo.so\n\n  \n")
    assert last_line(log) == "[100%] linking libdemo.so"
    assert last_line(tmp_path / "missing.log") == ""
