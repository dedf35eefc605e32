"""``~/.conda/environments.txt``: the list of environments conda knows, kept as conda keeps it.

conda appends each prefix it creates (one absolute, normalised path a line) and drops it when
the prefix is removed; ``conda env list`` and ``conda doctor`` read this file. pmpm does the
same after a successful install and on ``pmpm remove``, so conda users see pmpm's prefixes.
A registry that cannot be written is a note, never a failed install. Standard library only:
this runs on the no-op path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

Say = Callable[[str], None]


def environments_txt() -> Path:
    """Where conda looks (``~`` is ``$HOME``, as conda expands it)."""
    return Path(os.path.expanduser("~")) / ".conda" / "environments.txt"


def _location(prefix: Path) -> str:
    return os.path.normpath(os.path.abspath(os.path.expanduser(str(prefix))))


def registered() -> list[str]:
    try:
        text = environments_txt().read_text(encoding="utf-8")
    except OSError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def register(prefixes: Iterable[Path], say: Say) -> None:
    """Add the prefixes that are not listed yet (an up-to-date prefix costs one read).

    ``CONDA_REGISTER_ENVS=false`` (conda's own switch, as an environment variable) turns it off,
    for conda and pmpm alike: test suites and throw-away prefixes."""
    if os.environ.get("CONDA_REGISTER_ENVS", "").strip().lower() in ("false", "0", "no", "off"):
        return
    known = set(registered())
    new = [loc for loc in map(_location, prefixes) if loc not in known]
    if not new:
        return
    path = environments_txt()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as handle:
            handle.writelines(f"{loc}\n" for loc in new)
    except OSError as exc:
        say(f"note: could not register the environment in {path}: {exc.strerror}")


def deregister(prefixes: Iterable[Path], say: Say) -> None:
    """Drop the prefixes' lines, keeping every other line as it was."""
    gone = set(map(_location, prefixes))
    path = environments_txt()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return
    kept = [line for line in lines if line.strip() not in gone]
    if len(kept) == len(lines):
        return
    try:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        say(f"note: could not update {path}: {exc.strerror}")
