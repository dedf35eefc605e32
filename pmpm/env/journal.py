"""Put a prefix back exactly as it was when an install fails or is killed.

py-rattler links packages concurrently and stops at the first error, so a broken package, a full
disk or a killed process can leave a prefix with some packages half linked. Before changing a
prefix pmpm writes a journal (every path with its size, mtime and inode, plus copies of the
``conda-meta`` records); after a failure, or at the start of the next run when the previous one
was killed, :func:`restore` deletes what is new and relinks from the package cache every package
whose files were touched. A successful run deletes the journal.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pmpm import paths
from pmpm.env.diskspace import needs_space
from pmpm.errors import PmpmError
from pmpm.fsutil import atomic_write_text

FORMAT = 1
#: pmpm's own folder inside a prefix (lock, journal, no-op state, build inputs): see pmpm.paths
PMPM_DIR = paths.PMPM_DIR
#: what a snapshot leaves out: the lock and the journal itself
_OWN = frozenset(str(PMPM_DIR / name) for name in paths.RUN_FILES)
_OWN_IN_META = frozenset(f"{PMPM_DIR.name}/{name}" for name in paths.RUN_FILES)


pmpm_dir = paths.pmpm_dir
_journal_dir = paths.journal_dir


@dataclass
class Snapshot:
    existed: bool
    entries: dict[str, list[int]] = field(default_factory=dict)  # path -> [kind, size, mtime_ns, ino]

    @classmethod
    def take(cls, prefix: Path) -> Snapshot:
        if not (prefix / "conda-meta").is_dir():
            # a folder without conda-meta is not an environment: only an empty one is taken over
            return cls(existed=prefix.exists(), entries=_scan(prefix) if prefix.exists() else {})
        return cls(existed=True, entries=_scan(prefix))


def _scan(prefix: Path) -> dict[str, list[int]]:
    entries: dict[str, list[int]] = {}
    for root, dirs, files in os.walk(prefix):
        rel_root = os.path.relpath(root, prefix)
        # a nested prefix (a conda_install's per-target stack, PREFIX/compile/T) is a stack of
        # its own, with its own journal: not part of this one
        dirs[:] = [
            d
            for d in dirs
            if os.path.normpath(os.path.join(rel_root, d)) not in _OWN
            and not os.path.isdir(os.path.join(root, d, paths.CONDA_META))
        ]
        for name in dirs + files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if rel in _OWN:
                continue
            st = os.lstat(os.path.join(root, name))
            kind = 0 if name in dirs and not os.path.islink(os.path.join(root, name)) else 1
            entries[rel] = [kind, st.st_size, st.st_mtime_ns, st.st_ino]
    return entries


def begin(prefix: Path) -> Snapshot:
    """Write the journal for a change about to happen; returns the snapshot taken.

    The snapshot file is written last: a journal folder without it (a full disk, a kill while
    writing) stands for a change that never started, and is removed here or by the next run.
    """
    jdir = _journal_dir(prefix)
    try:
        with needs_space(f"writing the journal of {prefix}", jdir):
            snapshot = Snapshot.take(prefix)
            if jdir.exists():
                shutil.rmtree(jdir)
            jdir.mkdir(parents=True)
            meta = prefix / "conda-meta"
            if meta.is_dir():
                _copy_meta(meta, jdir / "conda-meta")
            atomic_write_text(
                jdir / "snapshot.json",
                json.dumps({"format": FORMAT, "existed": snapshot.existed, "entries": snapshot.entries}),
            )
    except BaseException:
        shutil.rmtree(jdir, ignore_errors=True)
        raise
    return snapshot


def _copy_meta(source: Path, target: Path) -> None:
    """Copy ``conda-meta`` without pmpm's lock and journal. Not ``shutil.copytree``: it folds
    the copies' errors into one message and loses their errno (a full disk must stay one)."""
    for root, dirs, files in os.walk(source):
        here = Path(root)
        rel = here.relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        links = [d for d in dirs if (here / d).is_symlink()]
        dirs[:] = [d for d in dirs if d not in links and (rel / d).as_posix() not in _OWN_IN_META]
        for name in [*files, *links]:
            if (rel / name).as_posix() in _OWN_IN_META:
                continue
            if (here / name).is_symlink():
                os.symlink(os.readlink(here / name), target / rel / name)
            else:
                shutil.copy2(here / name, target / rel / name)


def pending(prefix: Path) -> bool:
    """True when a previous run was interrupted between :func:`begin` and :func:`commit` (or
    while writing the journal: :func:`drop_partial`, run under the prefix lock, removes those)."""
    return _journal_dir(prefix).exists()


def drop_partial(prefix: Path) -> None:
    """Remove a journal whose writing was cut short (no snapshot: a kill or a full disk in
    :func:`begin`); nothing had changed yet. Only the holder of the prefix lock may call this:
    another run's :func:`begin` may be writing it otherwise."""
    jdir = _journal_dir(prefix)
    if jdir.exists() and not (jdir / "snapshot.json").is_file():
        shutil.rmtree(jdir, ignore_errors=True)


def commit(prefix: Path) -> None:
    shutil.rmtree(_journal_dir(prefix), ignore_errors=True)


def restore(prefix: Path) -> None:
    """Return ``prefix`` to the journal's snapshot, then drop the journal (no journal, or one
    whose writing was cut short: nothing had changed, nothing to do)."""
    drop_partial(prefix)
    if not pending(prefix):
        return
    # what the failed run added is deleted first, so a full disk has room again for the rest;
    # when it still has not, the journal stays for the next run to finish the repair
    with needs_space(f"putting {prefix} back as it was", prefix):
        _restore(prefix, _journal_dir(prefix))


def _restore(prefix: Path, jdir: Path) -> None:
    from pmpm.conda import engine as conda  # asyncio and more (~40 ms): the no-op check imports this module

    try:
        data = json.loads((jdir / "snapshot.json").read_text())
    except (OSError, ValueError) as exc:
        raise PmpmError(
            f"the journal of an interrupted run is unreadable: {exc}",
            where=str(jdir),
            hint="inspect the prefix; remove the journal folder to accept its current state",
        ) from None
    before: dict[str, list[int]] = data["entries"]
    now = _scan(prefix) if prefix.exists() else {}

    # 1. delete what the failed run added (files first, then folders, deepest first)
    # pmpm's own folder is never the run's addition: it holds this journal (a run that began
    # before the folder existed must still copy the saved records back from it)
    added = [p for p in now if p not in before and p != str(PMPM_DIR)]
    for rel in sorted(added, key=lambda p: (now[p][0] == 0, -p.count(os.sep))):
        path = prefix / rel
        if now[rel][0] == 0:
            try:
                path.rmdir()
            except OSError:
                shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            path.unlink()
    if not data["existed"]:
        commit(prefix)
        return

    # 2. put conda-meta back, then relink every package whose files changed
    _copy_meta_back(jdir, prefix)
    changed = {
        p for p, st in before.items() if st[0] == 1 and now.get(p) != st and not p.startswith("conda-meta")
    }
    old_records = conda.installed_records(prefix)
    touched = {r.name.normalized for r in old_records if any(os.path.normpath(f) in changed for f in r.files)}
    if touched:
        conda.install(
            old_records,
            prefix,
            installed=old_records,
            requested=[s for r in old_records for s in r.requested_specs],
            reinstall=touched,
        )
        _copy_meta_back(jdir, prefix)  # the relink rewrote records and history
    commit(prefix)


def _copy_meta_back(jdir: Path, prefix: Path) -> None:
    saved = jdir / "conda-meta"
    if saved.is_dir():
        shutil.copytree(saved, prefix / "conda-meta", symlinks=True, dirs_exist_ok=True)
