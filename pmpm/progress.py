"""What the compile stage shows while packages build side by side.

On a terminal: a live line per running build (``name: phase``, time so far, and the last line
its log got) under an overall bar, with finished builds printed above them (rich). Anywhere
else (CI logs, pipes, the tests): a plain line when a build starts, one per finished phase with
its duration, and one when it ends, because a log full of redraw sequences helps nobody. Each
build's own output goes to its log file, never here; the phases' durations go there too
(``=== NAME: PHASE took N s``), so they are kept with the build.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Say = Callable[[str], None]

#: how often the live display reads the running builds' logs (seconds)
POLL = 0.3
#: how much of a log's end is read to find its last line
TAIL_BYTES = 4096


def duration(seconds: float) -> str:
    """``12.3 s`` under a minute, ``1 min 12 s`` or ``2 h 5 min`` above."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


def last_line(log: Path) -> str:
    """The last non-empty line of ``log`` (its end only: logs of big builds are large)."""
    try:
        with log.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def summary(built: int, from_cache: int, up_to_date: int, seconds: float) -> str:
    """The run's closing line about its compiled packages."""
    return f"compiled: {built} built, {from_cache} from cache, {up_to_date} up to date in {duration(seconds)}"


def run_summary(result: Any, began: float) -> str | None:
    """:func:`summary` of a run's ``pmpm.build.result.BuildResult``, timed from ``began``
    (``time.monotonic()``); None for a run without compiled packages."""
    if result.plan is None or not len(result.plan):
        return None
    counts = (len(result.built), len(result.from_cache), len(result.up_to_date))
    return summary(*counts, time.monotonic() - began)


@dataclass
class _Running:
    log: Path | None
    phase: str | None = None
    since: float = 0.0
    task: Any = None


class BuildProgress(AbstractContextManager):
    """The display of one compile stage; safe to call from the builds' threads."""

    def __init__(self, total: int, say: Say, *, live: bool | None = None, console: Any = None) -> None:
        self._say = say
        self._total = total
        self._live = sys.stdout.isatty() if live is None else live
        self._console = console  # a rich Console (the tests record one); None: rich's own
        self._lock = threading.Lock()
        self._progress: Any = None
        self._running: dict[str, _Running] = {}
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._done = 0

    def __enter__(self) -> BuildProgress:
        if self._live:
            # rich: ~45 ms, only for a terminal's live display (a conda-only run imports this module)
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
            from rich.table import Column

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(bar_width=20),
                TextColumn("{task.fields[count]}"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[last]}", style="dim", table_column=Column(no_wrap=True)),
                console=self._console,
            )
            self._progress.__enter__()
            self._overall = self._progress.add_task(
                "compiled packages", total=self._total, count=f"0/{self._total}", last=""
            )
            self._reader = threading.Thread(target=self._read_logs, name="pmpm-progress", daemon=True)
            self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._reader is not None:
            self._reader.join()
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def say(self, text: str) -> None:
        with self._lock:
            self._print(text)

    def _print(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        else:
            self._say(text)

    def phase(self, name: str, phase: str, log: Path | None = None) -> None:
        """``name`` starts ``phase`` (fetch, prepare, configure, build, install, script, test,
        pack, link); the phase it was in ends."""
        with self._lock:
            running = self._running.setdefault(name, _Running(log))
            running.log = log or running.log
            self._end_phase(name, running)
            running.phase, running.since = phase, time.monotonic()
            if self._progress is not None:
                text = f"  {name}: {phase}"
                if running.task is None:
                    running.task = self._progress.add_task(text, total=None, count="", last="")
                else:
                    self._progress.update(running.task, description=text)

    def _end_phase(self, name: str, running: _Running) -> None:
        """The phase's duration: a plain line, and a line in the build's log."""
        if running.phase is None:
            return
        took = time.monotonic() - running.since
        if running.log is not None:
            try:
                with running.log.open("a", encoding="utf-8") as handle:
                    handle.write(f"=== {name}: {running.phase} took {took:.1f} s\n")
            except OSError:
                pass  # a log that cannot be written fails the build's own next step, not this
        if self._progress is None:
            self._say(f"  {name}: {running.phase} {duration(took)}")
        running.phase = None

    def started(self, name: str, text: str) -> None:
        """The build's opening line (plain mode; live mode shows ``name: phase``)."""
        with self._lock:
            if self._progress is not None:
                return
            # said before the phase already running (fetching: it told which builder) ends
            self._say(text)
            running = self._running.get(name)
            if running is not None:
                self._end_phase(name, running)

    def finished(self, name: str, text: str | None) -> None:
        """The build ended: ``text`` says how (None: it failed, its error says the rest)."""
        with self._lock:
            running = self._running.pop(name, None)
            if running is not None:
                self._end_phase(name, running)
            if self._progress is not None:
                if running is not None and running.task is not None:
                    self._progress.remove_task(running.task)
                if text is not None:
                    self._done += 1
                    self._progress.update(self._overall, advance=1, count=f"{self._done}/{self._total}")
            if text is not None:
                self._print(text)

    def refresh_logs(self) -> None:
        """Show each running build's last log line, cut to what fits beside it."""
        with self._lock:
            if self._progress is None:
                return
            room = max(20, self._progress.console.width - 60)
            for running in self._running.values():
                if running.task is None or running.log is None:
                    continue
                line = last_line(running.log)
                if len(line) > room:
                    line = line[: room - 1] + "…"
                self._progress.update(running.task, last=line)

    def _read_logs(self) -> None:
        while not self._stop.wait(POLL):
            self.refresh_logs()
