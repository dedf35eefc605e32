"""``pmpm clean``: what pmpm's cache holds that no environment needs, and (``--yes``) its removal.

The extracted package cache, downloaded sources, build folders and logs are only ever a way to
make the next run faster: installed environments keep their own files (hard links survive the
cache's removal) and a later run fetches again what it needs. The local build channel (compiled
packages) is left to ``pmpm cache prune``, since rebuilding costs far more than downloading.

Nothing a running install uses is deleted. Every install holds the cache shared
(:mod:`pmpm.env.cache_lock`), so ``--yes`` removes only while it holds the cache alone, and
skips everything, naming the runs, when it cannot. The package cache is py-rattler's, whose
entries have locks of their own (``pkgs/NAME.lock``, held while an entry is fetched or linked):
an entry locked by any process (another tool sharing the cache) is kept and named.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pmpm import paths
from pmpm.commands import jsonout
from pmpm.env.cache_lock import cache_alone

Say = Callable[[str], None]

#: what ``pmpm clean`` removes, in the order it reports them (the first is py-rattler's cache)
PARTS: tuple[tuple[str, Callable[[], Path]], ...] = (
    ("package cache", paths.package_cache),
    ("repodata cache", paths.repodata_cache),
    ("sources", paths.sources_dir),
    ("build folders", paths.build_dir),
    ("kept dev build folders", paths.dev_dir),
    ("build prefixes", paths.build_prefix_dir),
    ("logs", paths.log_dir),
)


def size(folder: Path) -> int:
    """Bytes of the files under ``folder``, each inode once (the package cache is hard-linked)."""
    if folder.is_file():
        return folder.stat().st_size
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


@contextmanager
def _entry_lock(lock: Path) -> Iterator[bool]:
    """Hold a package-cache entry's lock alone for the block: False when a process holds it."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        yield True  # never fetched by a locking installer: nobody to wait for
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _clean_packages(folder: Path) -> tuple[int, list[str]]:
    """Remove the package cache's entries nobody holds; the bytes freed and the entries kept."""
    before, busy = size(folder), []
    for entry in sorted(folder.iterdir()):
        if entry.name.endswith(".lock"):
            continue
        lock = entry.with_name(entry.name + ".lock")
        with _entry_lock(lock) as free:
            if not free:
                busy.append(entry.name)
                continue
            _remove(entry)
            lock.unlink(missing_ok=True)
    if not busy:
        shutil.rmtree(folder, ignore_errors=True)  # the lock files left and the cache's own
    return before - (size(folder) if folder.exists() else 0), busy


def _survey() -> list[dict[str, Any]]:
    found = []
    for kind, place in PARTS:
        folder = place()
        if folder.is_dir():
            found.append({"kind": kind, "path": str(folder), "size": size(folder), "freed": 0, "kept": []})
    return found


def _free(parts: list[dict[str, Any]]) -> None:
    """Remove each part (under the cache held alone), noting what was freed and kept."""
    for part in parts:
        folder = Path(part["path"])
        if part["kind"] == "package cache":
            part["freed"], part["kept"] = _clean_packages(folder)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            part["freed"] = part["size"]


def _busy_now() -> list[str]:
    """The runs using the cache at this moment (a look only: the cache is not kept held)."""
    with cache_alone() as busy:
        return busy or []


def _report(parts: list[dict[str, Any]], yes: bool, users: list[str], say: Say) -> None:
    for part in parts:
        line = f"  {part['kind']:<24} {_human(part['size']):>10}  {part['path']}"
        if part["kept"]:
            line += f"  (kept, in use: {', '.join(part['kept'])})"
        say(line)
    total = sum(p["size"] for p in parts)
    if users:
        runs = "; ".join(users)
        if yes:
            say(f"nothing was removed: the cache is in use by {runs}")
            say("run `pmpm clean --yes` again when it has finished")
            return
        say(f"note: the cache is in use by {runs}; `--yes` removes nothing until it has finished")
    if not yes:
        say(f"would free {_human(total)}; run `pmpm clean --yes` to remove these folders")
        return
    say(f"freed {_human(sum(p['freed'] for p in parts))}")


def run(yes: bool, as_json: bool, say: Say) -> int:
    if yes:
        with cache_alone() as busy:
            users = busy or []
            parts = _survey()
            if not users:
                _free(parts)
    else:
        users = _busy_now()
        parts = _survey()
    if as_json:
        document = {
            "cache": str(paths.cache_root()),
            "removed": yes and not users,
            "in_use_by": users,
            "parts": parts,
            "would_free": sum(p["size"] for p in parts),
            "freed": sum(p["freed"] for p in parts),
        }
        jsonout.emit("clean", document, say)
        return 0
    if not parts:
        say(f"nothing to clean in {paths.cache_root()}")
        return 0
    _report(parts, yes, users, say)
    return 0
