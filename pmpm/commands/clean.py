"""``pmpm clean``: what pmpm's cache holds that no environment needs, and (``--yes``) its removal.

The extracted package cache, downloaded sources, build folders and logs are only ever a way to
make the next run faster: installed environments keep their own files (hard links survive the
cache's removal) and a later run fetches again what it needs. The local build channel (compiled
packages) is left to ``pmpm cache prune``, since rebuilding costs far more than downloading.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from pmpm import paths

Say = Callable[[str], None]

#: what ``pmpm clean`` removes, in the order it reports them
PARTS: tuple[tuple[str, Callable[[], Path]], ...] = (
    ("package cache", paths.package_cache),
    ("repodata cache", paths.repodata_cache),
    ("sources", paths.sources_dir),
    ("build folders", paths.build_dir),
    ("kept dev build folders", paths.dev_dir),
    ("build prefixes", paths.build_prefix_dir),
    ("logs", paths.log_dir),
)


def size(folder: Path) -> int:
    """Bytes of the files under ``folder``, each inode once (the package cache is hard-linked)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _human(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"


def run(yes: bool, say: Say) -> int:
    found = [(what, place(), size(place())) for what, place in PARTS if place().is_dir()]
    total = sum(n for _, _, n in found)
    if not found:
        say(f"nothing to clean in {paths.cache_root()}")
        return 0
    for what, folder, n in found:
        say(f"  {what:<24} {_human(n):>10}  {folder}")
    if not yes:
        say(f"would free {_human(total)}; run `pmpm clean --yes` to remove these folders")
        return 0
    for _, folder, _ in found:
        shutil.rmtree(folder, ignore_errors=True)
    say(f"freed {_human(total)}")
    return 0
