"""``SOURCE_DATE_EPOCH`` for a fetched source: a time that belongs to the source, not to the build.

Builds export it (compilers expand ``__DATE__``/``__TIME__`` to it, Python compiles ``.pyc``
files by hash, build tools date their outputs with it) and the package takes its timestamp and
its members' mtimes from it, so a rebuild on another day gives the same bytes. As the
reproducible-builds convention says: an archive's newest member, a git commit's commit time,
and for a local tree (whose mtimes are only when someone last saved) a fixed value.
"""

from __future__ import annotations

import calendar
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from pmpm.sources.extract import _members
from pmpm.sources.transport import run_git

if TYPE_CHECKING:
    from pmpm.sources.cache import SourceCache
    from pmpm.sources.spec import FetchedSource

#: 1980-01-01T00:00:00Z, the earliest date a zip file can hold: local trees and undated archives
FIXED_EPOCH = 315532800


def source_date_epoch(cache: SourceCache, fetched: FetchedSource) -> int:
    spec = fetched.spec
    if spec.kind == "git" and spec.git is not None:
        commit = fetched.identity.removeprefix("git:")
        out = run_git(
            ["show", "-s", "--format=%ct", commit],
            cache._mirror_path(spec.git),
            f"cannot read the commit time of {commit}",
            spec.where,
        )
        return int(out.strip())
    if fetched.archive is not None:
        return archive_epoch(fetched.archive)
    return FIXED_EPOCH


def archive_epoch(archive: Path) -> int:
    """The newest member time of a tar or zip archive (FIXED_EPOCH when none has one). A zip's
    times are wall-clock times without a zone: read as UTC, so every machine gets the same."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            times = [calendar.timegm((*i.date_time, 0, 0, 0)) for i in zf.infolist()]
    else:
        with _members(archive) as members:
            times = [int(member.mtime) for member, _ in members if member.mtime]
    return max(times, default=FIXED_EPOCH)
