"""Small file-system primitives shared by the stages."""

from __future__ import annotations

import filecmp
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def sha256_file(path: Path | str) -> str:
    return file_digest(path, "sha256").hexdigest()


def file_digest(path: Path | str, algorithm: str) -> hashlib._Hash:
    """A file's digest read in blocks (``hashlib.file_digest`` is Python 3.11+; we support 3.10)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest


def temp_beside(path: Path) -> Path:
    """A name for a file to be renamed onto ``path``, unique across the machines sharing its folder.

    A process id alone is not: two nodes writing one shared cache can have the same pid. The file
    is then created with ``open``, so its mode follows the umask (a group-shared cache stays
    readable by the group) where ``mkstemp`` would make it 0600.
    """
    return path.with_name(f".{path.name}.{os.uname().nodename}.{os.getpid()}.{os.urandom(4).hex()}")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` so readers see either the old file or the new one, never a torn one.

    A failed write (a full disk) names ``path``: a write on an open file names no file, and
    the message must say which one could not be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mirror_tree(source: Path, target: Path, skip: Callable[[str], bool], previous: set[str]) -> set[str]:
    """Make ``target`` hold a copy of ``source``, touching only what differs; returns the
    relative paths now mirrored, which the caller passes back as ``previous`` next time.

    Files whose content matches are left alone and copies keep the source's mtime, so make and
    ninja see exactly the user's edits as new. Of what ``target`` holds besides, only
    paths mirrored last time (``previous``) are removed when the source lost them: the build's
    own output (objects of an in-tree make) stays. ``skip(name)`` leaves out folders and files
    by name (VCS data, the user's own build folders).
    """
    mirrored: set[str] = set()
    _mirror(source, target, skip, "", mirrored)
    for stale in sorted(previous - mirrored, reverse=True):
        _remove(target / stale)
    return mirrored


def _mirror(source: Path, target: Path, skip: Callable[[str], bool], rel: str, mirrored: set[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with os.scandir(source) as entries:
        for entry in entries:
            if skip(entry.name):
                continue
            here = f"{rel}{entry.name}"
            mirrored.add(here)
            dest = target / entry.name
            if entry.is_symlink():
                link = os.readlink(entry.path)
                if not dest.is_symlink() or os.readlink(dest) != link:
                    _remove(dest)
                    os.symlink(link, dest)
            elif entry.is_dir():
                if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
                    _remove(dest)
                _mirror(Path(entry.path), dest, skip, here + "/", mirrored)
            else:
                st = entry.stat()
                try:
                    have = dest.lstat()
                except FileNotFoundError:
                    same = False
                else:
                    # a file only touched keeps its old copy (and time): make and ninja rebuild
                    # what changed in content, not what an editor or a checkout re-saved
                    same = have.st_size == st.st_size and (
                        have.st_mtime_ns == st.st_mtime_ns or filecmp.cmp(entry.path, dest, shallow=False)
                    )
                if not same:
                    _remove(dest)
                    shutil.copy2(entry.path, dest)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
