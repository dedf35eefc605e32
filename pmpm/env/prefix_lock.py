"""One pmpm at a time per prefix.

An advisory ``flock`` on ``PREFIX/conda-meta/pmpm/lock``: the kernel releases it when the holder
exits, however it exits, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pmpm import paths
from pmpm.env.diskspace import needs_space
from pmpm.env.journal import drop_partial


@contextmanager
def prefix_lock(prefix: Path, *, on_wait: Callable[[str], None] = print) -> Iterator[None]:
    lock_path = paths.lock_file(prefix)
    with needs_space(f"creating the lock of {prefix}", lock_path):
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait(f"another pmpm is working on {prefix}; waiting for it to finish (lock: {lock_path})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        drop_partial(prefix)  # a journal cut short (killed, disk full): only the lock holder writes one
        yield
    finally:
        os.close(fd)
