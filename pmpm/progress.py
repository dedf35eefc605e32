"""What the compile stage shows while packages build side by side.

On a terminal: a live line per running build (name, what it is doing, time so far) under an
overall bar, with finished builds printed above them (rich). Anywhere else (CI logs, pipes, the
tests): one plain line when a build starts and one when it ends, because a log full of redraw
sequences helps nobody. Each build's own output goes to its log file, never here.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

Say = Callable[[str], None]


class BuildProgress(AbstractContextManager):
    def __init__(self, total: int, say: Say, *, live: bool | None = None) -> None:
        self._say = say
        self._total = total
        self._live = sys.stdout.isatty() if live is None else live
        self._lock = threading.Lock()
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}

    def __enter__(self) -> BuildProgress:
        if self._live:
            from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                TimeElapsedColumn(),
            )
            self._progress.__enter__()
            self._overall = self._progress.add_task(
                "compiled packages", total=self._total, count=f"0/{self._total}"
            )
            self._done = 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def say(self, text: str) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.console.print(text, markup=False, highlight=False)
            else:
                self._say(text)

    def started(self, name: str, text: str) -> None:
        with self._lock:
            if self._progress is not None:
                self._tasks[name] = self._progress.add_task(f"  {text}", total=None, count="")
            else:
                self._say(text)

    def finished(self, name: str, text: str) -> None:
        with self._lock:
            if self._progress is not None:
                task = self._tasks.pop(name, None)
                if task is not None:
                    self._progress.remove_task(task)
                self._done += 1
                self._progress.update(self._overall, advance=1, count=f"{self._done}/{self._total}")
                self._progress.console.print(text, markup=False, highlight=False)
            else:
                self._say(text)
