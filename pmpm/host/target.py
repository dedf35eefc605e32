"""This machine's CPU target, asked of archspec once and remembered per CPU.

Importing archspec and detecting the CPU costs more than the rest of a no-op run, so its answer
is kept in pmpm's cache (:func:`pmpm.paths.host_target_cache`) keyed by what archspec reads to
name the CPU (``/proc/cpuinfo``'s first processor, and the kernel): a change of either asks
archspec again. The record, the lock and the host profile all get the name from here.

This module must stay cheap to import: archspec is imported only on a cache miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import TYPE_CHECKING

from pmpm import paths
from pmpm.fsutil import atomic_write_text

if TYPE_CHECKING:
    from archspec.cpu import Microarchitecture


def cpu_fingerprint() -> str:
    """What archspec reads to name the CPU (model, flags), and the kernel."""
    try:
        with open("/proc/cpuinfo", "rb") as handle:
            first = handle.read(1 << 16).split(b"\n\n", 1)[0]
    except OSError:
        first = b""
    return hashlib.sha256(first + os.uname().release.encode()).hexdigest()


def host_microarchitecture() -> Microarchitecture:
    """archspec's microarchitecture for this CPU (archspec detects once per process), and the
    name remembered for the processes that need only the name."""
    import archspec.cpu

    host = archspec.cpu.host()
    _remember(host.name)
    return host


def host_target_name() -> str | None:
    """archspec's name for this CPU, from the cache when this CPU was seen before; None when
    archspec cannot classify it (the record is still useful without it)."""
    fingerprint = cpu_fingerprint()
    try:
        known = json.loads(paths.host_target_cache().read_text())
        if known.get("cpu") == fingerprint and isinstance(known.get("target"), str):
            return str(known["target"])
    except (OSError, ValueError, AttributeError):
        pass
    try:
        return host_microarchitecture().name
    except Exception:  # archspec on an unknown CPU
        return None


_remembered = False


def _remember(target: str) -> None:
    global _remembered
    if _remembered:
        return
    _remembered = True
    memo = paths.host_target_cache()
    fingerprint = cpu_fingerprint()
    with contextlib.suppress(OSError, ValueError, AttributeError):
        if json.loads(memo.read_text()).get("cpu") == fingerprint:
            return
    with contextlib.suppress(OSError):
        atomic_write_text(memo, json.dumps({"cpu": fingerprint, "target": target}))
