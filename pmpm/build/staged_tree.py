"""The staged tree a package is made of: its files and symlinks, each symlink checked to stay
inside what the package ships, each file hashed and scanned for the prefix placeholder
(:func:`pmpm.build.package.pack` writes the package from them)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm.errors import PmpmError

if TYPE_CHECKING:
    from pmpm.build.package import PackageMeta

#: Top-level names a package must not ship: ``info/`` is the metadata we write and
#: ``conda-meta/`` is the installer's record of the prefix.
_RESERVED_TOP = frozenset({"info", "conda-meta"})


@dataclass(frozen=True)
class Entry:
    """One file or symlink of the staged tree; ``target`` is the symlink target as it will ship."""

    path: str
    is_link: bool
    target: str | None = None


def collect(
    staged: Path, meta: PackageMeta, placeholder: str | None, external: frozenset[str]
) -> list[Entry]:
    """Walk ``staged`` without following symlinks (a link to a directory is one entry)."""
    where = f"package {meta.name}"
    bases = [str(staged.absolute()), os.path.realpath(staged)]
    if placeholder:
        bases.append(placeholder.rstrip("/"))
    entries: list[Entry] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(staged / rel_dir) as it:
            for de in it:
                rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                if not rel_dir and de.name in _RESERVED_TOP:
                    raise PmpmError(
                        f"staged tree contains {rel}/, which conda reserves for package metadata",
                        where=where,
                    )
                if "\n" in rel or "\r" in rel:
                    raise PmpmError(f"file name with a newline: {rel!r}", where=where)
                if de.is_symlink():
                    entries.append(Entry(rel, True, _link_target(staged, rel, bases, external, where)))
                elif de.is_dir(follow_symlinks=False):
                    stack.append(rel)
                elif de.is_file(follow_symlinks=False):
                    entries.append(Entry(rel, False))
                else:
                    raise PmpmError(f"{rel} is not a regular file, directory or symlink", where=where)
    entries.sort(key=lambda e: e.path)
    return entries


class _Escapes(Exception):
    """A symlink chain left the staged tree."""


def _inside(target: str, bases: list[str]) -> str | None:
    """``target`` relative to the staged root if it is under one of its names, else None."""
    for base in bases:
        if target == base or target.startswith(base + "/"):
            return os.path.relpath(target, base)
    return None


def _link_target(staged: Path, rel: str, bases: list[str], external: frozenset[str], where: str) -> str:
    """The target ``rel`` ships with, after checking it resolves to something the package ships."""
    target = os.readlink(staged / rel)
    if rel in external:
        return target
    link_dir = os.path.dirname(rel)
    if os.path.isabs(target):
        inside = _inside(target, bases)
        if inside is None:
            raise PmpmError(
                f"symlink {rel} -> {target} points outside the package",
                where=where,
                hint="link to a file the package ships (relative), or pass the link as external",
            )
        target = os.path.relpath(inside, link_dir or ".")
    try:
        resolved = _resolve(staged, f"{link_dir}/{target}", bases, external)
    except _Escapes:
        raise PmpmError(
            f"symlink {rel} -> {target} escapes the staged tree",
            where=where,
            hint="a package may only link to files it ships itself",
        ) from None
    if resolved is None:
        raise PmpmError(f"symlink {rel} -> {target} is a loop", where=where)
    if not os.path.lexists(staged / resolved):
        raise PmpmError(f"symlink {rel} -> {target} is dangling", where=where)
    return target


def _resolve(staged: Path, path: str, bases: list[str], external: frozenset[str]) -> str | None:
    """Resolve ``path`` (relative to the root) component by component, the way the kernel will
    in the installed prefix, without ever leaving the tree: ``os.path.realpath`` would follow
    an allowed external link to the host, and a lexical ``normpath`` gets ``link/..`` wrong.
    Returns the resolved relative path, or None for a loop.
    """
    parts: list[str] = []
    pending = list(reversed(path.split("/")))
    hops = 0
    while pending:
        comp = pending.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise _Escapes
            parts.pop()
            continue
        parts.append(comp)
        here = "/".join(parts)
        if not os.path.islink(staged / here):
            continue
        if here in external:
            if any(c not in ("", ".") for c in pending):
                raise _Escapes  # a path through a host link ends up on the host
            return here
        hops += 1
        if hops > 40:
            return None
        target = os.readlink(staged / here)
        parts.pop()
        if os.path.isabs(target):
            inside = _inside(target, bases)
            if inside is None:
                raise _Escapes
            parts = []
            target = inside
        pending.extend(reversed(target.split("/")))
    return "/".join(parts)


def describe(
    staged: Path, entries: list[Entry], placeholder: str | None
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Build ``paths.json`` entries and the ``(mode, path)`` list of files needing relocation."""
    needle = placeholder.encode() if placeholder else None
    paths: list[dict[str, Any]] = []
    has_prefix: list[tuple[str, str]] = []
    for entry in entries:
        src = staged / entry.path
        if entry.is_link:
            record: dict[str, Any] = {"_path": entry.path, "path_type": "softlink"}
            # conda-build records what the link points to; a link to a directory has no digest.
            pointee = os.path.join(os.path.dirname(src), entry.target or "")
            if os.path.isfile(pointee):
                digest, size, _, _ = _scan(Path(pointee), None)
                record.update(sha256=digest, size_in_bytes=size)
        else:
            digest, size, found, has_nul = _scan(src, needle)
            record = {"_path": entry.path, "path_type": "hardlink", "sha256": digest, "size_in_bytes": size}
            if found:
                mode = "binary" if has_nul else "text"
                record.update(prefix_placeholder=placeholder, file_mode=mode)
                has_prefix.append((mode, entry.path))
        paths.append(record)
    return paths, has_prefix


def _scan(path: Path, needle: bytes | None) -> tuple[str, int, bool, bool]:
    """sha256, size, whether ``needle`` occurs, whether a NUL byte occurs; one streaming read."""
    sha = hashlib.sha256()
    size = 0
    found = False
    has_nul = False
    keep = len(needle) - 1 if needle else 0
    tail = b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
            has_nul = has_nul or b"\0" in chunk
            if needle and not found:
                window = tail + chunk
                found = needle in window
                tail = window[len(window) - keep :] if keep else b""
    return sha.hexdigest(), size, found, has_nul
