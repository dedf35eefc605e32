"""Is an installed file its package's file, relocated to where the environment now is?

A file with a prefix placeholder (``paths.json`` ``prefix_placeholder``) holds the prefix it was
installed for. An environment moved legitimately -- conda-pack and ``conda-unpack``, or
conda-pack's ``--dest-prefix`` -- holds the package's file with the placeholder replaced by the
*new* prefix, so its hash differs from the ``sha256_in_prefix`` recorded at install. Such a file
is checked by undoing the replacement for the current prefix and comparing with the package's
own ``sha256``: exact, needs neither the package cache (often absent where an environment is
unpacked) nor the original prefix.

Undoing is the inverse of conda's replacement (which conda-pack and rattler share): in text
mode every occurrence of the prefix goes back to the placeholder; in binary mode each
NUL-terminated string holding the prefix k times goes back and gives up the k x (placeholder -
prefix) NUL bytes of padding that followed it. conda-pack also rewrites a ``bin/`` script's
``#!PLACEHOLDER/bin/prog`` line to ``#!/usr/bin/env prog``; that is undone too. A file still
holding the placeholder itself is a package unpacked but never relocated (``conda-unpack`` not
run): modified, except ``bin/python*``, which ``conda-unpack`` deliberately leaves so.

conda-pack adds its own scripts (``bin/conda-unpack``, ``bin/activate``...): :func:`tool_files`
names them so that they are not taken for files added behind pmpm's back.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path

#: files ``conda-unpack`` leaves holding the placeholder (it does not rewrite the running python)
_UNPACK_SKIPS = "bin/python"
_ENV_SHEBANG = re.compile(rb"\A#!/usr/bin/env ([^ \n\r\t/]+)([^\n]*)")

#: conda-pack's scripts, each known by a string only conda-pack's version of it holds
_CONDA_PACK_MARKERS = {"bin/activate": b"_conda_pack_activate", "bin/conda-unpack": b"prog='conda-unpack'"}
_CONDA_PACK_FILES = (
    "bin/activate",
    "bin/activate.fish",
    "bin/deactivate",
    "bin/conda-unpack",
    "bin/conda_unpack_progress.py",
)


def undo_text(data: bytes, prefix: bytes, placeholder: bytes) -> bytes:
    return data.replace(prefix, placeholder)


def undo_binary(data: bytes, prefix: bytes, placeholder: bytes) -> bytes:
    """The inverse of conda's binary replacement of ``placeholder`` by ``prefix``; strings
    without the padding a replacement leaves are kept as they are."""
    pad = len(placeholder) - len(prefix)
    if pad < 0 or not prefix:
        return data
    out = bytearray()
    at = 0
    for match in re.finditer(re.escape(prefix) + rb"[^\0]*\0", data):
        if match.start() < at:
            continue
        text = match.group()
        need = text.count(prefix) * pad
        end = match.end()
        if data[end : end + need] != b"\0" * need:
            continue
        out += data[at : match.start()] + text.replace(prefix, placeholder)
        at = end + need
    return bytes(out + data[at:])


def _undo_shebang(data: bytes, placeholder: bytes) -> bytes | None:
    match = _ENV_SHEBANG.match(data)
    if match is None:
        return None
    line = b"#!" + placeholder + b"/bin/" + match.group(1) + match.group(2)
    return line + data[match.end() :]


def matches(path: Path, rel: str, item: dict, prefixes: Iterable[str]) -> bool:
    """True when ``path`` is the package file ``item`` (a ``paths_data`` entry) relocated to one
    of ``prefixes`` (the environment's location, as given and resolved)."""
    placeholder = item.get("prefix_placeholder")
    want = item.get("sha256")
    if not placeholder or not want:
        return False
    try:
        data = path.read_bytes()
    except OSError:
        return False
    ph = placeholder.encode()
    binary = item.get("file_mode") == "binary"
    candidates = [data]
    if not binary and rel.startswith("bin/"):
        undone = _undo_shebang(data, ph)
        if undone is not None:
            candidates.append(undone)
    for candidate in candidates:
        for prefix in prefixes:
            new = prefix.encode()
            back = undo_binary(candidate, new, ph) if binary else undo_text(candidate, new, ph)
            if back == data and not rel.startswith(_UNPACK_SKIPS):
                continue  # the placeholder itself: unpacked, but `conda-unpack` was not run
            if hashlib.sha256(back).hexdigest() == want:
                return True
    return False


def tool_files(stack: Path, unowned: Iterable[str]) -> set[str]:
    """The unowned files conda-pack put into ``stack`` (its activate and unpack scripts)."""
    unowned = set(unowned)
    for rel, marker in _CONDA_PACK_MARKERS.items():
        if rel in unowned:
            try:
                head = (stack / rel).read_bytes()[:65536]
            except OSError:
                continue
            if marker in head:
                return {rel for rel in _CONDA_PACK_FILES if rel in unowned}
    return set()
