"""What a prefix holds: its package records (``conda-meta/*.json``) and its files.

The one reader of a prefix for the record, ``pmpm verify``, the no-op state and the journal, so
they agree on what a package record is and on which files are nobody's content: conda's and
pmpm's bookkeeping (``conda-meta``, a system_install's ``.pmpm``) and the bytecode Python writes
at run time (``__pycache__``, ``*.pyc``).

Cheap to import (standard library only): the no-op check (:mod:`pmpm.env.state`) uses it for
the record names. :func:`meta_records` reads the records as JSON; only :func:`prefix_records`,
which py-rattler's installer needs, imports py-rattler, and only the functions that make the
record's entries import :mod:`pmpm.record.model` (its dataclasses cost more to import than the
whole no-op check takes).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from pmpm import paths
from pmpm.errors import PmpmError

#: typing's own flag without importing typing (a few ms of the no-op check); type checkers
#: read a constant of this name as that flag
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from rattler import PrefixRecord

    from pmpm.record.model import FileEntry, PipPackage

#: top-level folders of a prefix that hold no package's files: conda's and pmpm's bookkeeping
BOOKKEEPING = frozenset({paths.CONDA_META, paths.ROOT_DIR})
#: never owned by a package and never an environment's content: bytecode Python writes at run time
RUNTIME_DIRS = frozenset({"__pycache__"})
RUNTIME_SUFFIXES = (".pyc",)
#: how :attr:`FileEntry.sha256_neutral` writes the stack's own location
NEUTRAL_PREFIX = "${prefix}"


def _unreadable(path: Path, exc: Exception) -> PmpmError:
    return PmpmError(
        f"unreadable package record: {exc}",
        where=str(path),
        hint="remove the file and run pmpm again to reinstall that package",
    )


# --------------------------------------------------------------------------- package records


def record_files(prefix: Path) -> list[Path]:
    """The package record files of a prefix, sorted; none when it has no ``conda-meta``."""
    meta = paths.conda_meta(prefix)
    return [meta / name for name in record_names(prefix)]


def record_names(prefix: Path) -> list[str]:
    """The record file names alone, sorted: what the no-op state compares (any change renames
    one). Names, not paths: sorting a few hundred paths costs the no-op more than the rest."""
    try:
        return sorted(n for n in os.listdir(paths.conda_meta(prefix)) if n.endswith(".json"))
    except OSError:
        return []


def meta_records(stack: Path) -> list[dict[str, Any]]:
    """The conda-meta records of a stack as JSON (no py-rattler needed to read them)."""
    records = []
    for path in record_files(stack):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _unreadable(path, exc) from None
        if isinstance(data, dict) and "name" in data:
            records.append(data)
    return records


def prefix_records(prefix: Path) -> list[PrefixRecord]:
    """The same records as py-rattler's ``PrefixRecord`` (what its installer and lock files take)."""
    from rattler import PrefixRecord

    records = []
    for path in record_files(prefix):
        try:
            records.append(PrefixRecord.from_path(path))
        except Exception as exc:  # py-rattler raises its own types for a malformed record
            raise _unreadable(path, exc) from None
    return records


def installed_files(data: dict[str, Any]) -> list[FileEntry]:
    """A conda-meta record's files with the hash they have once installed (after relocation)."""
    from pmpm.record.model import FileEntry

    entries = []
    items = (data.get("paths_data") or {}).get("paths") or []
    for item in items:
        kind = item.get("path_type", "hardlink")
        if kind == "directory":
            continue
        entries.append(
            FileEntry(
                path=item["_path"],
                sha256=None if kind == "softlink" else item.get("sha256_in_prefix") or item.get("sha256"),
                size=item.get("size_in_bytes"),
                prefix=item.get("file_mode") if item.get("prefix_placeholder") else None,
            )
        )
    if not items:  # a record without paths_data: names only
        entries = [FileEntry(path=p) for p in data.get("files") or []]
    return entries


# --------------------------------------------------------------------------- files


def is_runtime(rel: str) -> bool:
    """Bytecode Python writes while the environment runs: never checked, never recorded."""
    return rel.endswith(RUNTIME_SUFFIXES) or bool(RUNTIME_DIRS & set(rel.split("/")))


def is_ignored(rel: str) -> bool:
    """Not an environment's content: bookkeeping or run-time bytecode."""
    return rel.split("/", 1)[0] in BOOKKEEPING or is_runtime(rel)


def walk_files(stack: Path) -> dict[str, os.DirEntry[str]]:
    """Every file and symlink under ``stack`` (relative POSIX path), :func:`is_ignored` ones left out."""
    found: dict[str, os.DirEntry[str]] = {}
    pending = [("", stack)]
    while pending:
        rel_dir, folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            rel = f"{rel_dir}{entry.name}"
            if rel_dir == "" and entry.name in BOOKKEEPING:
                continue
            if entry.name in RUNTIME_DIRS or entry.name.endswith(RUNTIME_SUFFIXES):
                continue
            if entry.is_dir(follow_symlinks=False):
                if os.path.isdir(os.path.join(entry.path, "conda-meta")):
                    continue  # a stack nested in this one (PREFIX/compile/T): described on its own
                pending.append((rel + "/", Path(entry.path)))
            else:
                found[rel] = entry
    return found


def file_entry(stack: Path, rel: str, stack_name: str | None = None) -> FileEntry:
    """A file no package owns, as it is now. A text file naming the stack's location also gets
    a location-neutral hash: relocation tools (conda-pack) rewrite the location in such files."""
    from pmpm.record.model import FileEntry

    path = stack / rel
    if path.is_symlink():
        return FileEntry(path=rel, link=os.readlink(path), stack=stack_name)
    data = path.read_bytes()
    entry = FileEntry(path=rel, sha256=hashlib.sha256(data).hexdigest(), size=len(data), stack=stack_name)
    here = os.fsencode(stack)
    if here in data and _is_text(data):
        entry.prefix = "text"
        entry.sha256_neutral = hashlib.sha256(data.replace(here, NEUTRAL_PREFIX.encode())).hexdigest()
    return entry


def _is_text(data: bytes) -> bool:
    """conda-pack's test for an unmanaged file it may rewrite: valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def pip_packages(stack: Path, stack_name: str, unowned: list[str]) -> list[PipPackage]:
    """Python distributions among the files no conda package owns (their ``.dist-info``)."""
    from pmpm.record.model import PipPackage

    found = []
    for rel in unowned:
        if not rel.endswith(".dist-info/METADATA"):
            continue
        meta = (stack / rel).read_text(encoding="utf-8", errors="replace")
        name = re.search(r"^Name:\s*(.+)$", meta, re.M)
        version = re.search(r"^Version:\s*(.+)$", meta, re.M)
        installer = stack / rel.replace("/METADATA", "/INSTALLER")
        found.append(
            PipPackage(
                name=name.group(1).strip() if name else rel.split("/")[-2],
                version=version.group(1).strip() if version else "?",
                installer=installer.read_text().strip() if installer.is_file() else None,
                dist_info=rel.rsplit("/", 1)[0],
                stack=stack_name,
            )
        )
    return found
