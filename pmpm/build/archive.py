"""Write a ``.conda`` file whose bytes depend only on what it holds.

conda-package-handling's writer stamps the zip entries with the time of packing and the tar
members with the staged files' mtimes and modes (which follow the umask), so packing the same
tree twice gives two different files. This writer lays the archive out the way it does (a
stored zip holding ``metadata.json``, ``pkg-<n-v-b>.tar.zst``, ``info-<n-v-b>.tar.zst``, each
tar's size pledged in its zstd frame) but with every varying field fixed: members sorted by
name, mtimes set to the package's own time (``SOURCE_DATE_EPOCH``), owner root with no names,
modes 0644 or 0755 (0777 for symlinks), zip entries dated 1980-01-01 (zip's first date).
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

try:  # the same module conda-package-handling compresses with
    import compression.zstd as zstd  # type: ignore[import-not-found, unused-ignore]
except ImportError:  # Python < 3.14
    import backports.zstd as zstd  # type: ignore[import-not-found, no-redef, unused-ignore]

#: the version of the .conda layout, as conda-package-handling writes it
FORMAT_VERSION = 2
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_BLOCK = 1 << 20

#: one archive member: (name in the archive, file on disk or None, bytes, symlink target)
Member = tuple[str, Path | None, bytes | None, str | None]


def write_conda(
    out: Path,
    *,
    name: str,
    info: dict[str, str],
    root: Path,
    payload: Iterable[tuple[str, str | None]],
    mtime: int,
    level: int,
) -> None:
    """Write the package ``name`` (``<n-v-b>.conda``, which names its inner archives) to ``out``:
    ``info`` maps ``info/`` names to their text, ``payload`` lists ``(path, symlink target or
    None)`` below ``root``; every member gets ``mtime``."""
    stem = name.removesuffix(".conda")
    info_members = [(f"info/{n}", None, text.encode(), None) for n, text in info.items()]
    pkg_members = [(p, None if t is not None else root / p, None, t) for p, t in payload]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as outer:
        _add_bytes(outer, "metadata.json", json.dumps({"conda_pkg_format_version": FORMAT_VERSION}).encode())
        for component, members in (
            (f"pkg-{stem}.tar.zst", pkg_members),
            (f"info-{stem}.tar.zst", info_members),
        ):
            with tempfile.TemporaryFile(dir=out.parent) as tar:
                _write_tar(tar, sorted(members, key=lambda m: m[0]), mtime)
                size = tar.tell()
                tar.seek(0)
                entry = zipfile.ZipInfo(component, date_time=_ZIP_DATE)
                entry.external_attr = 0o644 << 16
                with outer.open(entry, "w", force_zip64=True) as dest:
                    _compress(tar, dest, size, level)


def _add_bytes(outer: zipfile.ZipFile, name: str, data: bytes) -> None:
    entry = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    entry.external_attr = 0o644 << 16
    outer.writestr(entry, data)


def _write_tar(handle, members: list[Member], mtime: int) -> None:
    with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path, data, target in members:
            item = tarfile.TarInfo(name)
            item.mtime = mtime
            item.uid = item.gid = 0
            item.uname = item.gname = ""
            if target is not None:
                item.type, item.linkname, item.mode = tarfile.SYMTYPE, target, 0o777
                tar.addfile(item)
            elif data is not None:
                item.size, item.mode = len(data), 0o644
                tar.addfile(item, io.BytesIO(data))
            else:
                assert path is not None
                st = os.lstat(path)
                item.size = st.st_size
                item.mode = 0o755 if st.st_mode & 0o111 else 0o644
                with path.open("rb") as source:
                    tar.addfile(item, source)


def _compress(source, dest, size: int, level: int) -> None:
    """One zstd frame with the size in its header (readers then need less memory)."""
    compressor = zstd.ZstdCompressor(level=level)
    compressor.set_pledged_input_size(size)
    while chunk := source.read(_BLOCK):
        dest.write(compressor.compress(chunk))
    dest.write(compressor.flush())
