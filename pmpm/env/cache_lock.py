"""Runs that use pmpm's cache hold it shared; ``pmpm clean`` holds it alone while it deletes.

pmpm's own cache parts (sources, build folders, build prefixes, logs) have no lock per entry,
and a run uses them from its first fetch to its last install. So every run inside a
:func:`pmpm.env.transaction.transaction` holds a shared ``flock`` on ``CACHE/lock`` for its whole
length, and ``pmpm clean`` removes those parts only when it can take that lock exclusively
(it never waits: a busy cache is skipped and said so). A run that starts while clean deletes
waits for it (a few seconds) and says so.

To say *who* uses the cache, each run also holds an exclusive lock on a note of its own,
``CACHE/users/<host>.<pid>``, naming itself; a note nobody holds is left by a killed run.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pmpm import paths
from pmpm.env.prefix_lock import holder, sign, whoami

Say = Callable[[str], None]


def gate_file() -> Path:
    return paths.cache_root() / "lock"


def users_dir() -> Path:
    return paths.cache_root() / "users"


def _open(path: Path) -> int | None:
    """The lock file open for locking, or None when the cache cannot be written (then there is
    nothing a ``pmpm clean`` of this user could delete either)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None


@contextmanager
def using_cache(say: Say) -> Iterator[None]:
    """Hold the cache shared for the block: ``pmpm clean`` leaves it alone meanwhile."""
    gate = _open(gate_file())
    if gate is None:
        yield
        return
    note_path = users_dir() / f"{os.uname().nodename}.{os.getpid()}"
    note = None
    try:
        try:
            fcntl.flock(gate, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            say(
                f"pmpm clean is removing cache entries ({holder(gate)}); waiting for it (lock: {gate_file()})"
            )
            fcntl.flock(gate, fcntl.LOCK_SH)
        note = _open(note_path)
        if note is not None:
            fcntl.flock(note, fcntl.LOCK_EX)  # our own file: never contended
            sign(note, whoami())
        yield
    finally:
        if note is not None:
            note_path.unlink(missing_ok=True)
            os.close(note)
        os.close(gate)


def users() -> list[str]:
    """Who holds the cache now, as each run named itself; notes of killed runs are removed."""
    found = []
    folder = users_dir()
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        fd = _open(path)
        if fd is None:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            found.append(holder(fd) or path.name)
        else:
            path.unlink(missing_ok=True)  # its run is gone (killed before it could remove it)
        finally:
            os.close(fd)
    return found


@contextmanager
def cache_alone() -> Iterator[list[str] | None]:
    """Try to hold the cache alone for the block: yields None when it is held (new runs wait
    until the block ends), or the runs using it when it is busy (nothing may be deleted then)."""
    gate = _open(gate_file())
    if gate is None:
        yield None
        return
    try:
        try:
            fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield users() or ["a pmpm run that is starting"]
            return
        sign(gate, whoami())
        try:
            yield None
        finally:
            sign(gate, "")
    finally:
        os.close(gate)
