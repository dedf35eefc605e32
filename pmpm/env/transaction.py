"""The one way pmpm changes prefixes: lock, repair, journal, roll back or commit.

Every install path (conda_install and system_install, ``--backend``, ``--lock``, ``pmpm
repair``) goes through :func:`transaction`, so "PREFIX is left exactly as it was" is kept in one
place. Two levels, because the paths check things between taking the lock and changing files
(the no-op check under the lock, repair's "can every package be fetched"):

``with transaction(stacks, say, roots) as txn:``
    takes every stack's prefix lock (in order) and holds pmpm's cache shared
    (:mod:`pmpm.env.cache_lock`), then puts back any stack a killed run left
    half changed. On any failure in the block, folders this run created (or found empty) are
    taken back to nothing once only pmpm's own lock folders are left in them.
``with txn.changing():``
    writes every stack's journal before the first change; a failure inside puts every stack
    back as it was (and says so when even that fails), success drops the journals.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pmpm.env import journal
from pmpm.env.cache_lock import using_cache
from pmpm.env.prefix_lock import prefix_lock
from pmpm.errors import PmpmError

Say = Callable[[str], None]


class Transaction:
    """The stacks one run holds locked; :meth:`changing` journals a change to all of them."""

    def __init__(self, stacks: Sequence[Path], say: Say) -> None:
        self.stacks = list(stacks)
        self.say = say
        self.committed = False

    @contextmanager
    def changing(self) -> Iterator[None]:
        try:
            for stack in self.stacks:  # in the try: when one cannot be written, all are dropped
                journal.begin(stack)
            yield
        except BaseException:
            self.rollback()
            raise
        for stack in self.stacks:
            journal.commit(stack)
        self.committed = True

    def rollback(self) -> None:
        """Put every stack back as its journal has it (stacks without one are left alone)."""
        for stack in self.stacks:
            try:
                journal.restore(stack)
            except PmpmError as exc:  # the original failure is the one to report
                self.say(f"could not put {stack} back as it was: {exc}")


@contextmanager
def transaction(stacks: Sequence[Path], say: Say, roots: Sequence[Path] = ()) -> Iterator[Transaction]:
    """Lock ``stacks``, repair an interrupted run in them, and on failure remove what this run
    created of ``stacks`` and ``roots`` (a system_install's ROOT holding them)."""
    folders = list(dict.fromkeys([*roots, *stacks]))
    # folders to take back to nothing if this run fails: new ones, and empty ones (whose
    # emptiness is what "as it was" means); decided before the locks create them
    new = [p for p in folders if not p.exists()]
    created = [*new, *(p for p in folders if _is_empty_dir(p))]
    txn = Transaction(stacks, say)
    try:
        with ExitStack() as locks:
            for stack in txn.stacks:
                locks.enter_context(prefix_lock(stack, on_wait=say))
            locks.enter_context(using_cache(say))  # `pmpm clean` leaves what this run uses alone
            for stack in txn.stacks:
                if journal.pending(stack):
                    say(f"repairing {stack}: a previous pmpm run was interrupted")
                    journal.restore(stack)
            yield txn
    except BaseException:
        for folder in reversed(created):
            if _only_pmpm_left(folder):
                existed = folder.is_dir() and folder not in new
                shutil.rmtree(folder, ignore_errors=True)
                if existed:
                    folder.mkdir()
        raise


def _is_empty_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not any(path.iterdir())
    except OSError:
        return False


def _only_pmpm_left(prefix: Path) -> bool:
    """After a failed first run: is all that is left pmpm's own lock folders? (Checked, not
    assumed: a run that waited on the lock may find another run's finished environment.)"""
    if not prefix.is_dir():
        return False
    own = str(journal.PMPM_DIR)
    for root, _dirs, files in os.walk(prefix):
        rel = os.path.relpath(root, prefix)
        if files and not (rel == own or rel.endswith(os.sep + own)):
            return False
    return True
