"""Keep ``conda-meta`` and the prefix what conda, mamba, rattler and pixi expect after an install.

py-rattler's installer rewrites every record's ``requested_specs`` from one flat list (a record
not named in it gets ``[]``), records read from a package file (pmpm's compiled packages) have a
sha256 but no md5, and it tags the prefix itself with a ``CACHEDIR.TAG`` that makes backup tools
(``tar --exclude-caches``, borg, restic) skip the whole environment. The helpers here undo each.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from pmpm.conda.engine import is_compiled
from pmpm.fsutil import file_digest
from pmpm.spec.matchspec import for_installer, parse

if TYPE_CHECKING:
    from rattler import PrefixRecord, RepoDataRecord

CACHE_TAG = "CACHEDIR.TAG"


@functools.cache
def spec_name(spec: str) -> str | None:
    """The package a match spec names (None for a spec that names none, such as ``*``).

    Cached: the history and the requested specs ask it of the same few specs many times in
    one run, and each reading goes through py-rattler's parser."""
    name = parse(spec).name  # conda's reading: also regex/glob versions (`numpy ^1\.7.*$`)
    return None if name is None else name.normalized


def requested_specs(
    records: Sequence[RepoDataRecord],
    installed: Sequence[PrefixRecord],
    requested: Sequence[str] | None,
    *,
    solved: bool,
) -> list:
    """The list to give py-rattler so each record ends up with the right ``requested_specs``.

    A record named by a spec in ``requested`` gets those specs. Any other keeps the ones it had,
    except a conda package of a solve's answer (``solved``): nobody asked for it any more. The
    compiled packages are never decided by the conda solve, so they keep theirs then too.
    """
    given: dict[str, list[str]] = {}
    for spec in requested or ():
        name = spec_name(spec)
        if name is not None:
            given.setdefault(name, []).append(spec)
    own = {r.name.normalized: list(r.requested_specs) for r in installed}
    specs: list[str] = []
    for record in records:
        name = record.name.normalized
        if name in given:
            specs += given[name]
        elif not (solved and not is_compiled(record)):
            specs += own.get(name, [])
    return [for_installer(s, list(records))._match_spec for s in dict.fromkeys(specs)]


def fill_md5(records: Iterable[RepoDataRecord]) -> None:
    """Give an md5 to records of local package files that have none, as a channel index does
    (``conda list --explicit --md5`` prints one per package, and conda checks it on reinstall)."""
    for record in records:
        if record.md5 is None and record.url.startswith("file://"):
            path = Path(unquote(urlparse(record.url).path))
            if path.is_file():
                record.md5 = file_digest(path, "md5").digest()


def drop_cache_tag(prefix: Path) -> None:
    """Remove the ``CACHEDIR.TAG`` py-rattler writes into the prefix (only that one, by its
    text): an environment is not a cache, and backups must not skip it (caches keep theirs)."""
    tag = prefix / CACHE_TAG
    try:
        if "created by rattler" in tag.read_text(errors="replace"):
            tag.unlink()
    except OSError:  # none there (or unreadable: then not rattler's)
        pass
