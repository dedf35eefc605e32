"""Say "the disk is full" when it is, whoever noticed it first.

HPC home folders are small and quota'd: a full disk (``ENOSPC``) or an exhausted quota
(``EDQUOT``) can hit any write — the journal, the package cache, a build folder, a log, the
record. Python reports it as an ``OSError`` deep inside a stack, py-rattler as text ("No space
left on device (os error 28)"), a compiler as a line in its log. Each of those becomes one
:class:`DiskFull` that names the mount point, the activity that needed the space and what to do;
the callers' journals then put PREFIX back as usual.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pmpm.errors import PmpmError
from pmpm.paths import cache_root

FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
#: how C libraries, Rust's std::io and the tools' own messages say it
_FULL_TEXT = re.compile(r"no space left on device|os error 28\b", re.IGNORECASE)
_QUOTA_TEXT = re.compile(r"disk quota exceeded|os error 122\b", re.IGNORECASE)


class DiskFull(PmpmError):
    """A write failed for want of space (or quota) on ``mount``."""

    def __init__(self, what: str, path: Path, *, quota: bool = False, hint: str | None = None) -> None:
        mount = mount_point(path)
        message = f"no space left on {mount} ({what})" + (": disk quota exceeded" if quota else "")
        free = _free_text(mount)
        if free:
            message += f"; {free} when it failed"
        advice = f"free space on {mount} (see `df -h {mount}`" + (", `quota -s`)" if quota else ")")
        if hint is None and mount == _cache_mount():
            hint = "or set PMPM_CACHE_DIR to a folder on a larger disk"
        super().__init__(message, hint=f"{advice}, then run pmpm again" + (f"; {hint}" if hint else ""))
        self.mount = mount
        self.path = path


def _cache_mount() -> Path:
    """pmpm's cache (packages, sources, builds, logs): where a move to a larger disk helps."""
    return mount_point(cache_root())


def mount_point(path: Path | str) -> Path:
    """The mount point holding ``path`` (or where it would be created)."""
    here = Path(os.path.abspath(path))
    while not here.exists() and here != here.parent:
        here = here.parent
    while not os.path.ismount(here) and here != here.parent:
        here = here.parent
    return here


def _free_text(mount: Path) -> str:
    try:
        usage = shutil.disk_usage(mount)
    except OSError:
        return ""
    return f"{_size(usage.free)} free of {_size(usage.total)}"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def full_errno(exc: BaseException | str | None) -> int | None:
    """``ENOSPC`` or ``EDQUOT`` when ``exc`` (or what caused it, or its text) says the disk is full."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, str):
            text = exc
        else:
            seen.add(id(exc))
            if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
                return exc.errno
            text = str(exc)
        if _QUOTA_TEXT.search(text):
            return errno.EDQUOT
        if _FULL_TEXT.search(text):
            return errno.ENOSPC
        if isinstance(exc, str):
            return None
        # the cause, else what was being handled, unless `raise ... from None` hid it
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return None


def _written_path(exc: BaseException) -> Path | None:
    """The file a failed write was writing: a copy's destination, else the file named (a write
    on an open file names none)."""
    if isinstance(exc, OSError):
        for name in (exc.filename2, exc.filename):
            if isinstance(name, str | os.PathLike) and name:
                return Path(os.fsdecode(name))
    return None


def as_disk_full(exc: BaseException, what: str, path: Path, hint: str | None = None) -> DiskFull | None:
    """``exc`` explained as a full disk while ``what`` wrote under ``path``, or None when it is
    not one; the mount blamed is that of the file the error names, else that of ``path``."""
    if isinstance(exc, DiskFull):
        return exc
    code = full_errno(exc)
    if code is None:
        return None
    return DiskFull(what, _written_path(exc) or path, quota=code == errno.EDQUOT, hint=hint)


def last_resort(exc: BaseException) -> DiskFull | None:
    """For the CLI: a full disk that no stage explained, or None. Without a file named in the
    error, the fullest of the places a command writes to is blamed (the paths on its command
    line, pmpm's cache, TMPDIR, the working folder)."""
    if full_errno(exc) is None:
        return None
    written = _written_path(exc)
    if written is not None:
        return as_disk_full(exc, f"writing {written}", written)

    places = [Path(a) for a in sys.argv[1:] if not a.startswith("-")]
    places += [cache_root(), Path(tempfile.gettempdir()), Path.cwd()]
    return as_disk_full(exc, "writing a file", fullest(places))


@contextmanager
def needs_space(
    what: str, path: Path, *, hint: str | None = None, cleanup: Iterable[Path] = ()
) -> Iterator[None]:
    """Turn a full disk or quota inside the block into :class:`DiskFull` naming ``what`` (the
    activity, e.g. "writing the journal of PREFIX") and the mount point of the file written
    (``path`` when the error names none). Other errors pass unchanged.

    ``cleanup``: folders the block fills that are worthless half-written (a build folder kept
    for incremental builds): removed on a full disk, so the space comes back with the error.
    """
    try:
        yield
    except Exception as exc:
        full = as_disk_full(exc, what, path, hint)
        if full is None:
            raise
        for folder in cleanup:
            shutil.rmtree(folder, ignore_errors=True)
        if full is exc:
            raise
        raise full from None


def fullest(paths: Iterable[Path]) -> Path:
    """Of folders a failed tool may have written to, the one on the mount with least room left."""

    def free(path: Path) -> int:
        try:
            return shutil.disk_usage(mount_point(path)).free
        except OSError:
            return 1 << 62

    return min(paths, key=free)


def tool_failure(text: str, what: str, paths: Iterable[Path], hint: str | None = None) -> DiskFull | None:
    """A tool whose output (``text``, e.g. a log's tail) says the disk filled: which of the
    folders it wrote to (``paths``: its build folder, TMPDIR...) is full, as :class:`DiskFull`."""
    code = full_errno(text)
    if code is None:
        return None
    return DiskFull(what, fullest(paths), quota=code == errno.EDQUOT, hint=hint)


def installer_failure(exc: BaseException, prefix: Path, cache: Path, needed: int) -> DiskFull | None:
    """When py-rattler's install fails: is a full package cache or prefix the cause?

    Its errors mostly carry the OS error's text; when they do not (a torn file read back:
    "EOF while parsing"), a cache or prefix with less room than the archives still to unpack
    (``needed`` bytes) is blamed rather than the channel.
    """
    text = str(exc)
    code = full_errno(exc)
    if code is not None:
        where = cache if re.search(r"failed to fetch|package cache", text) else prefix
        if "failed to link" in text:
            where = prefix
        return _install_full(prefix, where, cache, quota=code == errno.EDQUOT)
    for where in (cache, prefix):
        try:
            free = shutil.disk_usage(mount_point(where)).free
        except OSError:
            continue
        if free == 0 or free < needed:
            return _install_full(prefix, where, cache)
    return None


def _install_full(prefix: Path, where: Path, cache: Path, *, quota: bool = False) -> DiskFull:
    if where == cache:
        what = f"unpacking packages into the package cache {cache} for {prefix}"
        return DiskFull(what, where, quota=quota)
    return DiskFull(f"installing packages into {prefix}", where, quota=quota)
