"""RPATHs relative to the file (``$ORIGIN/../lib``) instead of the padded build prefix.

Builds link with ``-Wl,-rpath,BUILD_PREFIX/lib`` (the only form every build system passes through
unharmed: ``$`` does not survive make and libtool). Before packing, each ELF file's RUNPATH or
RPATH entries under the build prefix are rewritten relative to where the file will be installed,
as conda-build and rattler-build do: the file then finds its libraries in any prefix, and when
nothing else in it names the prefix it needs no binary prefix replacement at all (which only
fits prefixes not longer than the build prefix).

The rewrite is done in place: the new string is shorter than the old one (the build prefix is
padded long), so it is written over it in ``.dynstr`` and the rest is filled with NUL bytes,
the same edit conda's installer makes when it relocates a binary. The entries are read with
binutils' ``readelf`` (installed with the compilers).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

_PATH_TAG = re.compile(r"\((RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]")
_DYNSTR = re.compile(r"\]\s+\.dynstr\s+STRTAB\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)\s")


def relative_rpaths(staged: Path, prefix: str) -> list[str]:
    """Rewrite the RPATHs under ``prefix`` of the ELF files in ``staged`` (the tree that will be
    installed as ``prefix``); returns the paths of the files changed."""
    readelf = shutil.which("readelf")
    if readelf is None:
        return []
    needle = prefix.encode()
    changed = []
    for path in sorted(staged.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as handle:
            if handle.read(4) != b"\x7fELF":
                continue
        data = path.read_bytes()
        if needle not in data:
            continue
        rel = path.relative_to(staged).as_posix()
        if _rewrite(path, data, readelf, prefix, os.path.dirname(rel)):
            changed.append(rel)
    return changed


def _rewrite(path: Path, data: bytes, readelf: str, prefix: str, rel_dir: str) -> bool:
    out = subprocess.run([readelf, "-d", "-S", "-W", path], capture_output=True, text=True, check=False)
    tags, table = _PATH_TAG.findall(out.stdout), _DYNSTR.search(out.stdout)
    if out.returncode != 0 or not tags or table is None:
        return False
    start, size = int(table[1], 16), int(table[2], 16)
    edited = bytearray(data)
    done = False
    for _, value in tags:
        new = ":".join(_relative(entry, prefix, rel_dir) for entry in value.split(":"))
        old_bytes, new_bytes = value.encode() + b"\0", new.encode()
        at = data.find(old_bytes, start, start + size)
        if new == value or at < 0 or len(new_bytes) >= len(old_bytes):
            continue
        edited[at : at + len(old_bytes)] = new_bytes.ljust(len(old_bytes), b"\0")
        done = True
    if done:
        mode = path.stat().st_mode
        tmp = path.with_name(f".{path.name}.rpath")
        tmp.write_bytes(bytes(edited))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    return done


def _relative(entry: str, prefix: str, rel_dir: str) -> str:
    """``entry`` as ``$ORIGIN/...`` when it is under ``prefix`` (the file is in ``prefix/rel_dir``)."""
    if entry != prefix and not entry.startswith(prefix + "/"):
        return entry
    inside = os.path.relpath(entry, prefix)
    rel = os.path.normpath(os.path.relpath(inside, rel_dir or "."))
    return "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"
