"""Turn a staged prefix tree into a genuine ``.conda`` package.

pmpm installs what it compiles the same way it installs conda-forge packages: as conda packages
linked by the embedded installer. That keeps one record of what is in a prefix (``conda-meta``),
lets the solver see compiled packages, and lets the installer relocate them. This module only
writes the package; deciding what goes in it and where it is installed belongs to the callers.

Relocation works the conda-build way: files are built with an absolute *placeholder* prefix
baked in, and the installer replaces that placeholder with the real prefix. In text files any
new prefix fits. In binary files the replacement must not change the file's layout, so the
installer writes the new prefix over the old one and pads the rest of the C string with NUL
bytes: a binary placeholder can only be relocated to a prefix that is *not longer* than the
placeholder. That is why build prefixes are padded to a long path (conda-build's
``_h_env_placehold_placehold_...``): the longer the placeholder, the more install prefixes fit.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform as _platform
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmpm.build.archive import write_conda
from pmpm.build.staged_tree import Entry, collect, describe
from pmpm.errors import PmpmError
from pmpm.fsutil import temp_beside

#: Level 19 (conda-build's default) takes ~10x longer than 10 for a ~10 % smaller file; pmpm
#: packs locally and installs right away, so packing time matters more than archive size.
DEFAULT_COMPRESSION_LEVEL = 10

_NAME_RE = re.compile(r"^[a-z0-9_][a-z0-9_.\-]*$")
# Versions and build strings become parts of ``name-version-build.conda``: no dashes.
_VERSION_RE = re.compile(r"^[A-Za-z0-9_.+!*]+$")
_BUILD_RE = re.compile(r"^[A-Za-z0-9_.+]+$")

_OS_NAMES = {"Linux": "linux", "Darwin": "osx", "Windows": "win"}


def host_subdir() -> str:
    """The conda subdir of this machine (``linux-64``, ``linux-aarch64``, ``osx-arm64``...).

    Computed from :mod:`platform` rather than asked of py-rattler so that building a
    :class:`PackageMeta` stays import-light.
    """
    system = _platform.system()
    machine = _platform.machine().lower()
    os_name = _OS_NAMES.get(system, system.lower())
    if machine in ("x86_64", "amd64"):
        arch = "64"
    elif machine in ("i386", "i686", "x86"):
        arch = "32"
    elif machine in ("aarch64", "arm64"):
        arch = "arm64" if os_name == "osx" else "aarch64"
    else:
        arch = machine
    return f"{os_name}-{arch}"


@dataclass(frozen=True)
class PackageMeta:
    """What ``info/index.json`` and ``info/about.json`` say about a package.

    ``subdir`` defaults to the host's subdir, or ``noarch`` for a noarch package. ``timestamp``
    (milliseconds since the epoch) defaults to ``$SOURCE_DATE_EPOCH`` when set, else to the newest
    modification time in the staged tree: packing the same tree twice gives byte-identical
    metadata, while a rebuilt tree still gets a newer timestamp. ``extra`` is free metadata kept
    in ``about.json`` (the compile stage stores its build key there).
    """

    name: str
    version: str
    build: str
    build_number: int = 0
    depends: tuple[str, ...] = ()
    constrains: tuple[str, ...] = ()
    noarch: str | None = None
    subdir: str = ""
    license: str | None = None
    summary: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    timestamp: int | None = None

    def __post_init__(self) -> None:
        # Accept lists from callers but keep the frozen value hashable-ish and order-stable.
        object.__setattr__(self, "depends", tuple(self.depends))
        object.__setattr__(self, "constrains", tuple(self.constrains))
        where = f"package {self.name}"
        if not _NAME_RE.match(self.name):
            raise PmpmError(
                f"invalid package name {self.name!r}",
                where=where,
                hint="use lowercase letters, digits, '_', '.' and '-'",
            )
        if not _VERSION_RE.match(self.version):
            raise PmpmError(
                f"invalid version {self.version!r}",
                where=where,
                hint="a conda version has no '-' or spaces; use '_' or '.' instead",
            )
        if not _BUILD_RE.match(self.build):
            raise PmpmError(f"invalid build string {self.build!r}", where=where, hint="no '-' or spaces")
        if self.build_number < 0:
            raise PmpmError(f"negative build number {self.build_number}", where=where)
        if self.noarch not in (None, "generic"):
            raise PmpmError(
                f"unsupported noarch type {self.noarch!r}",
                where=where,
                hint="pmpm packs only noarch: generic (noarch: python needs install-time compilation)",
            )
        if not self.subdir:
            object.__setattr__(self, "subdir", "noarch" if self.noarch else host_subdir())
        elif self.noarch and self.subdir != "noarch":
            raise PmpmError(f"a noarch package cannot have subdir {self.subdir!r}", where=where)
        for spec in (*self.depends, *self.constrains):
            if not spec.strip():
                raise PmpmError("empty dependency spec", where=where)

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}.conda"


def pack(
    staged: Path,
    meta: PackageMeta,
    out_dir: Path,
    *,
    placeholder: str | None = None,
    external_symlinks: Collection[str] = (),
    compression_level: int = DEFAULT_COMPRESSION_LEVEL,
    extra_info: Mapping[str, str] | None = None,
) -> Path:
    """Pack ``staged`` (laid out like a prefix: ``bin/``, ``lib/``...) as ``out_dir/<n-v-b>.conda``.

    Files containing ``placeholder`` are recorded for relocation: ``text`` mode when they have
    no NUL byte, ``binary`` mode otherwise. Binary relocation needs an install prefix no longer
    than the placeholder, so build under a long padded prefix (see the module docstring).

    Symlinks ship as symlinks. Absolute targets inside ``staged`` or ``placeholder`` are made
    relative so they survive relocation; a symlink that leaves the tree or dangles is an error,
    except the paths listed in ``external_symlinks``, whose targets ship verbatim (for links that
    must point at the host, such as a venv's ``bin/python``). Empty directories are dropped.

    ``extra_info`` adds files under ``info/`` (name below it -> text), such as the rendered recipe
    and build inputs (:mod:`pmpm.build.provenance`); like every ``info/`` file they are not listed
    in ``info/paths.json``.

    The archive's bytes depend only on the tree's contents, executable bits, ``meta`` and
    ``extra_info`` (:mod:`pmpm.build.archive`: sorted members, the package's time, no owners).
    It is written under a temporary name and renamed, so ``out_dir`` never holds a half-written
    package.
    Returns the package path.
    """
    staged = Path(staged)
    out_dir = Path(out_dir)
    if not staged.is_dir():
        raise PmpmError(f"staged tree {staged} is not a directory", where=f"package {meta.name}")
    if placeholder is not None:
        _check_placeholder(placeholder, meta)
    entries = collect(staged, meta, placeholder, frozenset(external_symlinks))
    paths, has_prefix = describe(staged, entries, placeholder)
    timestamp = _timestamp(meta, staged, entries)
    info = _info_files(meta, placeholder, entries, paths, has_prefix, timestamp)
    clash = sorted(set(info) & set(extra_info or {}))
    if clash:
        raise PmpmError(f"info/{clash[0]} is written by pmpm itself", where=f"package {meta.name}")
    info.update(extra_info or {})

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / meta.filename
    scratch = temp_beside(final)  # not mkstemp: its 0600 would keep a shared channel from the group
    try:
        write_conda(
            scratch,
            name=meta.filename,
            info=info,
            root=staged,
            payload=[(e.path, e.target if e.is_link else None) for e in entries],
            mtime=timestamp // 1000,
            level=compression_level,
        )
        os.replace(scratch, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(scratch)
    return final


def _check_placeholder(placeholder: str, meta: PackageMeta) -> None:
    if not placeholder.startswith("/") or any(c.isspace() for c in placeholder):
        raise PmpmError(
            f"prefix placeholder {placeholder!r} must be an absolute path without whitespace",
            where=f"package {meta.name}",
            hint="info/has_prefix separates fields with spaces",
        )


def _timestamp(meta: PackageMeta, staged: Path, entries: list[Entry]) -> int:
    if meta.timestamp is not None:
        return meta.timestamp
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        try:
            return int(epoch) * 1000
        except ValueError:
            raise PmpmError(f"SOURCE_DATE_EPOCH={epoch!r} is not an integer") from None
    newest = max((os.lstat(staged / e.path).st_mtime for e in entries), default=staged.stat().st_mtime)
    return int(newest * 1000)


def _arch_platform(subdir: str) -> tuple[str | None, str | None]:
    if subdir == "noarch":
        return None, None
    plat, _, arch = subdir.partition("-")
    return {"64": "x86_64", "32": "x86"}.get(arch, arch), plat


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _info_files(
    meta: PackageMeta,
    placeholder: str | None,
    entries: list[Entry],
    paths: list[dict[str, Any]],
    has_prefix: list[tuple[str, str]],
    timestamp: int,
) -> dict[str, str]:
    arch, plat = _arch_platform(meta.subdir)
    index: dict[str, Any] = {
        "name": meta.name,
        "version": meta.version,
        "build": meta.build,
        "build_number": meta.build_number,
        "depends": sorted(meta.depends),
        "constrains": sorted(meta.constrains),
        "subdir": meta.subdir,
        "arch": arch,
        "platform": plat,
        "timestamp": timestamp,
    }
    if meta.noarch:
        index["noarch"] = meta.noarch
    if meta.license:
        index["license"] = meta.license
    about: dict[str, Any] = {"extra": meta.extra}
    if meta.license:
        about["license"] = meta.license
    if meta.summary:
        about["summary"] = meta.summary
    info = {
        "index.json": _dump(index),
        "paths.json": _dump({"paths": paths, "paths_version": 1}),
        "files": "".join(f"{e.path}\n" for e in entries),
        "about.json": _dump(about),
    }
    if has_prefix:
        # Legacy (pre-paths.json) readers; written only when something needs relocating, as
        # conda-build does. Paths with spaces are quoted the way conda parses them.
        info["has_prefix"] = "".join(f"{placeholder} {mode} {_quote(path)}\n" for mode, path in has_prefix)
    return info


def _quote(path: str) -> str:
    return f'"{path}"' if " " in path else path


def binary_misfit(package: Path, prefix: Path) -> str | None:
    """The first file of ``package`` (a ``.conda`` or ``.tar.bz2``) that cannot be relocated into
    ``prefix``: one with a binary-mode placeholder shorter than it (see the module's text);
    None when every file fits, as a package built with relative RPATHs usually does."""
    from rattler.package import PathsJson  # rattler: only when a cached build is weighed

    need = len(str(prefix))
    for entry in PathsJson.from_package_archive(package).paths:
        holder = entry.prefix_placeholder
        if holder is not None and holder.file_mode.binary and len(holder.placeholder) < need:
            return str(entry.relative_path)
    return None
