"""Compare two copies of a package's files: which differ and, for ELF files, in which sections.

Used by ``pmpm cache check`` to show how a rebuild differs from what was built before. An ELF
file's sections are listed by binutils' ``readelf -S -W`` (installed with every compiler) and
compared byte for byte, so "``.text`` differs" (other code) is told from "only
``.note.gnu.build-id`` differs" (a linker detail) or "``.debug_str`` differs" (a build path).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from conda_package_handling import api

from pmpm.record.relocation import undo_binary, undo_text

#: ``[Nr] Name Type Address Off Size ...`` in ``readelf -S -W`` (section 0 has no name: skipped)
_SECTION = re.compile(r"^\s*\[\s*(\d+)\]\s+(\S+)\s+(\S+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)\s", re.M)


def unpack(package: Path, dest: Path) -> dict[str, dict]:
    """Extract a ``.conda`` into ``dest``; its ``paths.json`` entries by path."""
    api.extract(str(package), dest_dir=str(dest))
    paths = json.loads((dest / "info" / "paths.json").read_text(encoding="utf-8"))["paths"]
    return {item["_path"]: item for item in paths}


def info_differences(here: Path, rebuilt: Path) -> list[str]:
    """A line per metadata file (``info/``, which ``paths.json`` does not list) that differs
    between two unpacked packages: the recipe, build inputs, index..."""
    names = {
        p.relative_to(root).as_posix()
        for root in (here, rebuilt)
        for p in (root / "info").rglob("*")
        if not p.is_dir()
    }
    lines = [describe(rel, content(here, rel), content(rebuilt, rel)) for rel in sorted(names)]
    return [line for line in lines if line is not None]


def as_built(path: Path, item: dict, prefix: str) -> bytes | str | None:
    """An installed file as its package holds it: the relocation to ``prefix`` undone (see
    :mod:`pmpm.record.relocation`); a symlink as its target; None when it is missing."""
    if os.path.islink(path):
        return os.readlink(path)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    placeholder = item.get("prefix_placeholder")
    if not placeholder:
        return data
    undo = undo_binary if item.get("file_mode") == "binary" else undo_text
    return undo(data, prefix.encode(), placeholder.encode())


def content(root: Path, rel: str) -> bytes | str | None:
    path = root / rel
    if os.path.islink(path):
        return os.readlink(path)
    return path.read_bytes() if path.is_file() else None


def describe(rel: str, here: bytes | str | None, rebuilt: bytes | str | None) -> str | None:
    """None when a file is the same here (installed, cached) and in the rebuild, else a line
    naming it and how it differs."""
    if here == rebuilt:
        return None
    if here is None or rebuilt is None:
        return f"{rel}: {'missing (the rebuild has it)' if here is None else 'not in the rebuild'}"
    if isinstance(here, str) or isinstance(rebuilt, str):
        return f"{rel}: symlink target {here!r}, the rebuild's {rebuilt!r}"
    if here[:4] == rebuilt[:4] == b"\x7fELF":
        sections = elf_sections(here, rebuilt)
        if sections is not None:
            said = ", ".join(sections) if sections else "bytes outside every section (headers, padding)"
            return f"{rel} (ELF): differs in {said}"
    return f"{rel}: differs ({len(here)} bytes, the rebuild's {len(rebuilt)})"


def elf_sections(a: bytes, b: bytes) -> list[str] | None:
    """The sections whose content differs between ``a`` and the rebuild ``b``; None when
    readelf cannot tell."""
    ta, tb = _sections(a), _sections(b)
    if ta is None or tb is None:
        return None
    differ: list[str] = []
    for name in sorted(ta.keys() | tb.keys(), key=lambda n: (ta.get(n) or tb.get(n) or (0,))[0]):
        if name not in ta or name not in tb:
            differ.append(f"{name} ({'only in' if name in tb else 'not in'} the rebuild)")
            continue
        (_, kind, off_a, size_a), (_, _, off_b, size_b) = ta[name], tb[name]
        same = (
            size_a == size_b if kind == "NOBITS" else a[off_a : off_a + size_a] == b[off_b : off_b + size_b]
        )
        if not same:
            differ.append(name)
    return differ


def _sections(data: bytes) -> dict[str, tuple[int, str, int, int]] | None:
    """Section name -> (index, type, file offset, size), read by ``readelf`` from a copy."""
    readelf = shutil.which("readelf")
    if readelf is None:
        return None
    with tempfile.NamedTemporaryFile(prefix="pmpm-elf-") as copy:
        copy.write(data)
        copy.flush()
        out = subprocess.run([readelf, "-S", "-W", copy.name], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    return {
        m[2]: (int(m[1]), m[3], int(m[4], 16), int(m[5], 16))
        for m in _SECTION.finditer(out.stdout)
        if m[1] != "0"
    }
