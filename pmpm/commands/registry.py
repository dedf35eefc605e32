"""``~/.conda/environments.txt``: the list of environments conda knows, kept as conda keeps it.

conda appends each prefix it creates (one absolute, normalised path a line) and drops it when
the prefix is removed; ``conda env list`` and ``conda doctor`` read this file. pmpm does the
same after a successful install and on ``pmpm remove``, so conda users see pmpm's prefixes.
A registry that cannot be written is a note, never a failed install. Standard library only:
this runs on the no-op path.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
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


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One pmpm at a time changes the file: a ``flock`` on its folder (no file of pmpm's own
    beside conda's; a folder that cannot be opened means no lock, as conda takes none)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def register(prefixes: Iterable[Path], say: Say) -> None:
    """Add the environments that are not listed yet (an up-to-date prefix costs one read).

    A prefix counts only while it has ``conda-meta``, checked under the lock :func:`deregister`
    takes after ``pmpm remove`` deleted the folders: an install that finished just before a
    remove cannot list again the prefix the remove took away.
    ``CONDA_REGISTER_ENVS=false`` (conda's own switch, as an environment variable) turns it off,
    for conda and pmpm alike: test suites and throw-away prefixes."""
    if os.environ.get("CONDA_REGISTER_ENVS", "").strip().lower() in ("false", "0", "no", "off"):
        return
    prefixes = list(prefixes)
    known = set(registered())
    if all(_location(p) in known for p in prefixes):
        return
    path = environments_txt()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.parent):
            known = set(registered())
            new = [_location(p) for p in prefixes if (Path(p) / "conda-meta").is_dir()]
            new = [loc for loc in dict.fromkeys(new) if loc not in known]
            if new:
                with path.open("a", encoding="utf-8") as handle:
                    handle.writelines(f"{loc}\n" for loc in new)
    except OSError as exc:
        say(f"note: could not register the environment in {path}: {exc.strerror}")


def deregister(prefixes: Iterable[Path], say: Say) -> None:
    """Drop the prefixes' lines, keeping every other line as it was."""
    gone = set(map(_location, prefixes))
    path = environments_txt()
    with _locked(path.parent):
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
