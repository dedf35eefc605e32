"""Run a tool with its output kept in a log, and explain a failure from that log.

Logs live in pmpm's cache, not in PREFIX, so they survive a failed run that leaves PREFIX as it
was (or removes a prefix that the run created).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from pmpm.errors import PmpmError

TAIL_LINES = 30


def log_path(label: str) -> Path:
    base = Path(os.environ.get("PMPM_LOG_DIR") or _default_log_dir())
    base.mkdir(parents=True, exist_ok=True)
    return base / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{label}.log"


def _default_log_dir() -> Path:
    from pmpm.conda import cache_dir

    return cache_dir() / "logs"


def run_logged(
    argv: Sequence[str],
    *,
    label: str,
    what: str,
    hint: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> Path:
    """Run ``argv`` (never through a shell); on failure raise with the log's last lines and path."""
    log = log_path(label)
    with log.open("w", encoding="utf-8") as handle:
        handle.write("$ " + " ".join(map(str, argv)) + "\n")
        handle.flush()
        try:
            result = subprocess.run(
                list(map(str, argv)), cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False
            )
        except OSError as exc:
            raise PmpmError(f"{what}: cannot run {argv[0]}: {exc}", hint=hint, log=log) from None
    if result.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
        raise PmpmError(
            f"{what} (exit code {result.returncode}); last lines of the log:\n" + "\n".join(tail),
            hint=hint,
            log=log,
        )
    return log
