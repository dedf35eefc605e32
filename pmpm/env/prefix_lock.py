"""One pmpm at a time per prefix.

An advisory ``flock`` on ``PREFIX/conda-meta/pmpm/lock``: the kernel releases it when the holder
exits, however it exits, so a killed run never leaves a stale lock behind. The holder writes who
it is into the file (and empties it when done), so a run that has to wait can say whom for.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pmpm import paths
from pmpm.env.diskspace import needs_space
from pmpm.env.journal import drop_partial


def whoami() -> str:
    """This process as a lock holder names itself: pid, host and command line."""
    words = shlex.join(["pmpm", *sys.argv[1:]])
    return f"pid {os.getpid()} on {os.uname().nodename}: {words}"[:400]


def holder(fd: int) -> str:
    """Who wrote itself into the lock file open at ``fd`` ("" when nobody did)."""
    try:
        return os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def sign(fd: int, text: str) -> None:
    """Write ``text`` as the lock file's only content (best effort: a full disk keeps it empty)."""
    try:
        os.ftruncate(fd, 0)
        if text:
            os.pwrite(fd, text.encode(), 0)
    except OSError:
        pass


def _same_file(fd: int, path: Path) -> bool:
    """Is the locked file still the one at ``path``? (``pmpm remove`` deletes it under its lock;
    a run that waited meanwhile must lock the file a new prefix has, not the deleted one.)"""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    there = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


@contextmanager
def prefix_lock(prefix: Path, *, on_wait: Callable[[str], None] = print) -> Iterator[None]:
    lock_path = paths.lock_file(prefix)
    while True:
        with needs_space(f"creating the lock of {prefix}", lock_path):
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = holder(fd)
            by = f" ({who})" if who else ""
            on_wait(f"another pmpm is working on {prefix}{by}; waiting for it to finish (lock: {lock_path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        if _same_file(fd, lock_path):
            break
        os.close(fd)  # the prefix was removed while this run waited: lock the new one
    try:
        sign(fd, whoami())
        drop_partial(prefix)  # a journal cut short (killed, disk full): only the lock holder writes one
        yield
    finally:
        sign(fd, "")  # a finished run leaves the file as it found it
        os.close(fd)
