"""What keeps two builds of the same inputs byte-identical: paths that do not depend on the user or
the cache folder, and one time for everything (``SOURCE_DATE_EPOCH``, see
:mod:`pmpm.sources.epoch`).

* The padded build prefix is baked into binaries (RPATHs, strings) and ``info/has_prefix``, so it
  is the same on every machine for a recipe: ``/tmp/pmpm-bp/NAME-TAG_placehold_placehold...``
  (TAG: a digest of the recipe's text). ``/tmp`` is on every Unix machine and is not any user's
  folder; builds of one recipe in two runs at once take turns (:func:`hold`). When another
  user owns the folder, the caller falls back to a prefix in its own cache (still relocatable,
  but its bytes then name that folder).
* The build folder (sources, build tree, staged files) lies beside the build prefix and is
  named by the build key alone (:func:`build_folder`), so every path and flag a build sees is
  the same in every run: a configure script that records its CFLAGS (FFTW's ``fftw-wisdom -V``
  prints them) records the same ``-ffile-prefix-map`` argument. That option maps the folder out
  of debug information, ``__FILE__`` and assertion messages.
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


def build_folder(place: Path | None, name: str, key: str) -> Path | None:
    """Where package ``name`` with build key ``key`` is built when its build prefix ``place`` is
    under :data:`BUILD_ROOT`: ``BUILD_ROOT/NAME-KEY.build``, the same path in every run and
    cache folder. None (build in pmpm's cache instead) for another prefix, or when someone
    else's file (or a link) holds that name: the sticky root lets anyone create it first."""
    if place is None or place.parent != BUILD_ROOT:
        return None
    folder = BUILD_ROOT / f"{name}-{key[:16]}.build"
    for path, kind in ((folder, stat.S_ISDIR), (_lock_file(folder), stat.S_ISREG)):
        try:
            found = path.lstat()
        except FileNotFoundError:
            continue
        if not kind(found.st_mode) or found.st_uid != os.getuid():
            return None
    return folder


def _lock_file(place: Path) -> Path:
    return place.with_name(f".{place.name}.lock")


@contextmanager
def hold(place: Path | None) -> Iterator[None]:
    """Use the build prefix (or build folder) ``place`` alone: another run building the same
    package waits."""
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


def why_in_prefix(prefix: Path, place: Path | None, cached: Path | None) -> str | None:
    """Why a package is built in ``prefix`` (PREFIX) rather than in its padded build prefix
    ``place``, or None. A PREFIX longer than ``place`` takes a cached build whose binary
    placeholders all fit (text ones always do; relative RPATHs leave most packages none); a
    new build is not known to fit until it is made, so it is made in PREFIX."""
    if place is None or len(str(prefix)) <= len(str(place)):
        return None
    longer = f"built in PREFIX: it is longer than the {len(str(place))}-character build prefix"
    if cached is None:
        return f"{longer} and no cached build relocates into it"
    from pmpm.build.package import binary_misfit  # rattler: imported when a package is read

    misfit = binary_misfit(cached, prefix)
    return None if misfit is None else f"{longer} and the cached build's {misfit} has a binary placeholder"
