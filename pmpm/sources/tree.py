"""Local source trees (``path:`` sources): their content identity, computed with a stat cache
so a tree of thousands of files under development costs a stat per file plus reading what was
edited, and the files that changed between two identities (for ``pmpm plan``'s reasons).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from pmpm import paths
from pmpm.errors import PmpmError
from pmpm.fsutil import atomic_write_text, sha256_file
from pmpm.sources.spec import FetchedSource, SourceSpec


def stat_cache_for(stat_caches: Path, tree: Path) -> Path:
    return stat_caches / hashlib.sha256(os.fsencode(Path(tree).resolve())).hexdigest()[:24]


def fetch_path(spec: SourceSpec, stat_caches: Path) -> FetchedSource:
    assert spec.path is not None
    if not spec.path.is_dir():
        raise PmpmError(
            f"source folder {spec.path} does not exist or is not a folder",
            where=spec.where,
            hint="path: is relative to the recipe's folder",
        )
    cache = stat_cache_for(stat_caches, spec.path)
    return FetchedSource(spec, f"tree:{hash_tree(spec.path, stat_cache=cache)}", None, str(spec.path))


def hash_tree(root: Path, *, stat_cache: Path | None = None) -> str:
    """Content identity of a folder: names, executable bits, file contents and link targets.

    Timestamps, owners and permission bits other than "executable" are left out, so touching a
    file or checking it out again with another umask does not rebuild; the folders in
    ``paths.UNTRACKED_DIRS`` (and ``*.egg-info``) are left out because builds write them.

    ``stat_cache`` (a file) remembers each file's sha256 with its size, mtime, ctime and inode:
    a file whose stat is unchanged is not read again, so a tree of thousands of files under
    development costs a stat per file, plus reading what was edited.
    """
    cache = _read_stat_cache(stat_cache)
    known: dict[str, list] = cache["stats"]
    fresh: dict[str, list] = {}
    entries: list[tuple[bytes, str, str]] = []  # (relative path, kind, absolute path)
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir)) as scan:
            for entry in scan:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_symlink():
                    entries.append((os.fsencode(rel), "l", entry.path))
                elif entry.is_dir():
                    if paths.untracked(entry.name):
                        continue
                    entries.append((os.fsencode(rel), "d", entry.path))
                    stack.append(rel)
                elif entry.is_file():
                    if entry.name != ".git":  # a worktree's or submodule's pointer file
                        entries.append((os.fsencode(rel), "f", entry.path))
                else:
                    entries.append((os.fsencode(rel), "o", entry.path))  # fifo, socket: never read
    digest = hashlib.sha256()
    for rel_bytes, kind, path in sorted(entries):
        if kind == "f":
            st = os.stat(path)
            mode = "755" if st.st_mode & 0o111 else "644"
            stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
            rel = os.fsdecode(rel_bytes)
            cached = known.get(rel)
            detail = cached[4] if cached and cached[:4] == stamp else sha256_file(Path(path))
            fresh[rel] = [*stamp, detail]
        elif kind == "l":
            mode, detail = "", os.readlink(path)
        else:
            mode, detail = "", ""
        digest.update(b"%s\0%s\0%s\0%s\n" % (rel_bytes, kind.encode(), mode.encode(), os.fsencode(detail)))
    result = digest.hexdigest()
    if stat_cache is not None and (fresh != known or result not in cache["snapshots"]):
        # the last few states by tree hash, so a rebuild can name the files that changed
        snapshots = {k: v for k, v in cache["snapshots"].items() if k != result}
        snapshots = dict(list(snapshots.items())[-(_SNAPSHOTS - 1) :])
        snapshots[result] = {rel: entry[4] for rel, entry in fresh.items()}
        atomic_write_text(stat_cache, json.dumps({"stats": fresh, "snapshots": snapshots}))
    return result


_SNAPSHOTS = 3


def _read_stat_cache(path: Path | None) -> dict[str, dict]:
    empty: dict[str, dict] = {"stats": {}, "snapshots": {}}
    if path is None:
        return empty
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return empty
    if not isinstance(data, dict) or not isinstance(data.get("stats"), dict):
        return empty
    return {"stats": data["stats"], "snapshots": data.get("snapshots") or {}}


def changed_files(stat_cache: Path, old: str, new: str) -> list[str] | None:
    """The files that differ between two hashed states of one local tree (``tree:<hash>``
    identities), when both are still remembered; None when not."""
    snapshots = _read_stat_cache(stat_cache)["snapshots"]
    before, after = snapshots.get(old.removeprefix("tree:")), snapshots.get(new.removeprefix("tree:"))
    if before is None or after is None:
        return None
    return sorted(rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel))
