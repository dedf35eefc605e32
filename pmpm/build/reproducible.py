"""What keeps two builds of the same inputs byte-identical: paths that do not depend on the user or
the cache folder, and one time for everything (``SOURCE_DATE_EPOCH``, see
:mod:`pmpm.sources.epoch`).

* The padded build prefix is baked into binaries (RPATHs, strings) and ``info/has_prefix``, so it
  is the same on every machine for a recipe: ``/tmp/pmpm-bp/NAME-TAG_placehold_placehold...``
  (TAG: a digest of the recipe's text). ``/tmp`` is on every Unix machine and is not any user's
  folder; builds of one recipe in two runs at once take turns (:func:`hold`). When another
  user owns the folder, the caller falls back to a prefix in its own cache (still relocatable,
  but its bytes then name that folder).
* The build folders (sources and build tree under pmpm's cache) are mapped out of debug
  information, ``__FILE__`` and assertion messages with ``-ffile-prefix-map``.
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: where build prefixes live: the same path for every user, cache folder and machine
BUILD_ROOT = Path("/tmp/pmpm-bp")
#: what the build folder is called in the compiled files
MAPPED_WORK = "/usr/src/pmpm"
#: compilers that know ``-ffile-prefix-map`` (GCC 8, Clang 10 and the compilers built on them)
_PREFIX_MAP_VENDORS = frozenset({"gcc", "clang", "apple-clang", "oneapi", "aocc"})


def build_place(name: str, length: int) -> Path | None:
    """The padded build prefix of package ``name``, ``length`` characters long; None when it
    cannot be used by this user (another user made it) or would be too short to pad."""
    head = f"{BUILD_ROOT}/{name}_"
    pad = length - len(head)
    if pad < 8:
        return None
    place = Path(head + ("placehold_" * (length // 10 + 1))[:pad])
    try:
        BUILD_ROOT.mkdir(exist_ok=True)
        root = BUILD_ROOT.lstat()
        if root.st_uid == os.getuid():
            os.chmod(BUILD_ROOT, 0o1777)  # sticky, like /tmp: everyone's builds, no one's files
        elif not (stat.S_ISDIR(root.st_mode) and root.st_uid == 0 and root.st_mode & stat.S_ISVTX):
            return None  # another user's folder (or a link) could swap our build prefix under us
    except OSError:
        return None
    for path in (place, _lock_file(place)):
        try:
            if path.lstat().st_uid != os.getuid():
                return None
        except FileNotFoundError:
            pass
    return place


def _lock_file(place: Path) -> Path:
    return place.with_name(f".{place.name}.lock")


@contextmanager
def hold(place: Path | None) -> Iterator[None]:
    """Use the build prefix ``place`` alone: another run building the same package waits."""
    if place is None or place.parent != BUILD_ROOT:
        yield
        return
    BUILD_ROOT.mkdir(exist_ok=True)  # a /tmp cleaner may have removed it since planning
    fd = os.open(_lock_file(place), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def prefix_map(work: Path, vendor: str) -> str:
    """``-ffile-prefix-map`` flags that write the build folder ``work`` as :data:`MAPPED_WORK`
    (its resolved path too, which CMake may use), or "" for a compiler without the option."""
    if vendor not in _PREFIX_MAP_VENDORS:
        return ""
    names = dict.fromkeys([str(work), os.path.realpath(work)])
    return " ".join(f"-ffile-prefix-map={name}={MAPPED_WORK}" for name in names)
