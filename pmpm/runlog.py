"""Run a tool with its output kept in a log, and explain a failure from that log.

Logs live in pmpm's cache, not in PREFIX, so they survive a failed run that leaves PREFIX as it
was (or removes a prefix that the run created).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from pmpm import paths
from pmpm.env.diskspace import DiskFull, mount_point, needs_space, tool_failure
from pmpm.errors import PmpmError

TAIL_LINES = 30


def log_path(label: str) -> Path:
    base = paths.log_dir()
    with needs_space(f"making the log folder for {label}", base, hint=LOG_HINT):
        base.mkdir(parents=True, exist_ok=True)
    return base / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{label}.log"


LOG_HINT = "or set PMPM_CACHE_DIR (or PMPM_LOG_DIR for the logs) to a folder on a larger disk"


def disk_full_in_log(log: Path, what: str, cwd: Path | None, argv: Sequence[object] = ()) -> None:
    """Raise :class:`DiskFull` when a failed tool's log says the disk filled: the folder
    blamed is the fullest of those it writes to (its working folder, the absolute paths on its
    command line such as PREFIX's python or ``-p PREFIX``, TMPDIR, the log's)."""
    tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:])
    named = [Path(str(a)) for a in argv if os.path.isabs(str(a))]
    folders = [p for p in (cwd, *named, Path(tempfile.gettempdir()), log.parent) if p is not None]
    full = tool_failure(tail, what, folders)
    if full is None and shutil.disk_usage(mount_point(log.parent)).free == 0:
        full = DiskFull(f"{what}: its log {log} could not be written", log.parent, hint=LOG_HINT)
    if full is not None:
        full.log = log
        raise full


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
    with (
        needs_space(f"writing the log of {label}", log, hint=LOG_HINT),
        log.open("w", encoding="utf-8") as handle,
    ):
        handle.write("$ " + " ".join(map(str, argv)) + "\n")
        handle.flush()
        try:
            result = subprocess.run(
                list(map(str, argv)), cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, check=False
            )
        except OSError as exc:
            raise PmpmError(f"{what}: cannot run {argv[0]}: {exc}", hint=hint, log=log) from None
    if result.returncode != 0:
        disk_full_in_log(log, what, cwd, argv)
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
        raise PmpmError(
            f"{what} (exit code {result.returncode}); last lines of the log:\n" + "\n".join(tail),
            hint=hint,
            log=log,
        )
    return log
