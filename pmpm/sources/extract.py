"""Unpack source archives so that a hostile or broken archive cannot touch anything outside its folder.

Source tarballs come from the internet and are unpacked by a tool that may run with write access to
shared software trees, so every member is checked here rather than trusting ``tarfile``'s defaults
(its ``filter="data"`` exists only from Python 3.12, and pmpm supports 3.10). The rules:

* member names must be relative and free of ``..``; device files, fifos and other special members
  are refused;
* hard links must point at a regular file unpacked earlier from the same archive;
* symbolic links are created last, after every file and folder, so nothing is ever written through
  one; a link whose target is absolute or resolves (following the links already made) outside the
  folder is refused, and a link where the archive also put a file or folder is refused.

Everything is unpacked into a fresh folder beside the destination and renamed into place only when
the whole archive went through, so a refused archive leaves nothing behind.
"""

from __future__ import annotations

import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pmpm.errors import PmpmError

BLOCK = 1 << 20
_UNSAFE_HINT = (
    "the archive tries to write outside its folder or to create special files; if this really is the "
    "upstream file, report it upstream and unpack it by hand after checking its contents"
)


@dataclass(frozen=True)
class Member:
    """One archive entry in the form the checks need, whatever the archive format."""

    name: str  # as stored in the archive, for messages
    kind: str  # "file" | "dir" | "symlink" | "hardlink", or a description of a refused kind
    mode: int
    mtime: float | None
    link: str = ""  # symlink target, or the archive name a hard link points at


def extract_archive(archive: Path, dest: Path, *, where: str | None = None) -> Path:
    """Unpack ``archive`` (tar, compressed tar or zip, told apart by content) to replace ``dest``.

    ``dest`` is a work folder owned by the caller: an existing one is replaced whole, so a second
    unpack never mixes two versions. Returns the source tree's top folder: the single top-level
    folder when the archive has exactly one, else ``dest`` itself.
    """
    dest = Path(os.path.abspath(dest))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.unpack-", dir=dest.parent))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp's private 0700 would otherwise become the tree's mode
        _Unpacker(archive, tmp, where).run()
        _replace_dir(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return top_folder(dest)


def top_folder(tree: Path) -> Path:
    """Archives usually wrap everything in ``name-version/``; that folder is the project's root."""
    entries = list(tree.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        return entries[0]
    return tree


def _replace_dir(new: Path, dest: Path) -> None:
    """Swap ``new`` in with two renames so ``dest`` is never half old, half new."""
    if not os.path.lexists(dest):
        os.rename(new, dest)
        return
    if dest.is_symlink() or not dest.is_dir():
        dest.unlink()
        os.rename(new, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.rename(dest, old / "tree")
    os.rename(new, dest)
    shutil.rmtree(old, ignore_errors=True)


class _Unpacker:
    def __init__(self, archive: Path, root: Path, where: str | None) -> None:
        self.archive = archive
        self.root = root
        self.real_root = os.path.realpath(root)
        self.where = where
        self.files: set[str] = set()  # regular files unpacked so far: the only valid hard link targets
        self.links: list[tuple[Member, str]] = []
        self.dirs: list[tuple[str, float]] = []

    def run(self) -> None:
        try:
            with _members(self.archive) as members:
                for member, opener in members:
                    self._add(member, opener)
        except PmpmError:
            raise
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError) as exc:
            raise self._unreadable(exc) from None
        except OSError as exc:
            if exc.errno is not None:  # a real file-system error; gzip and bz2 data errors have none
                raise
            raise self._unreadable(exc) from None
        self._make_links()
        for rel, mtime in reversed(self.dirs):  # children first: making them touched their parents
            os.utime(os.path.join(self.root, rel), (mtime, mtime))

    def _unreadable(self, exc: BaseException) -> PmpmError:
        return PmpmError(
            f"cannot unpack {self.archive.name}: not a readable tar or zip archive ({exc})",
            where=self.where,
            hint=f"the file may be truncated or of another format: {self.archive}",
        )

    def _refuse(self, member: Member, why: str) -> PmpmError:
        return PmpmError(
            f"refusing to unpack {self.archive.name}: member {member.name!r} {why}",
            where=self.where,
            hint=_UNSAFE_HINT,
        )

    def _clean(self, member: Member, name: str, what: str = "") -> str:
        """Archive names as a relative path inside the root, or a refusal naming the member."""
        if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
            raise self._refuse(member, f"{what}has an absolute path")
        parts = [p for p in name.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise self._refuse(member, f"{what}has a '..' component")
        return "/".join(parts)

    def _inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return real == self.real_root or real.startswith(self.real_root + os.sep)

    def _parent_ready(self, member: Member, rel: str) -> str:
        """Create the member's folders; refuse when a file of the archive is in the way."""
        parent = os.path.join(self.root, posixpath.dirname(rel))
        if not self._inside(parent):
            raise self._refuse(member, "would be written outside the destination")
        try:
            os.makedirs(parent, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise self._refuse(member, "needs a folder where the archive put a file") from None
        return os.path.join(self.root, rel)

    def _add(self, member: Member, opener: Callable[[], IO[bytes]]) -> None:
        if member.kind not in ("file", "dir", "symlink", "hardlink"):
            raise self._refuse(member, f"is a {member.kind}")
        rel = self._clean(member, member.name)
        if not rel:
            if member.kind == "dir":
                return  # "./": the root itself
            raise self._refuse(member, "has an empty name")
        if member.kind == "symlink":
            self._check_link_target(member, rel)
            self.links.append((member, rel))
            return
        path = self._parent_ready(member, rel)
        if member.kind == "dir":
            if os.path.lexists(path) and not (os.path.isdir(path) and not os.path.islink(path)):
                raise self._refuse(member, "is a folder where the archive already put a file")
            os.makedirs(path, exist_ok=True)
            if member.mtime is not None:
                self.dirs.append((rel, member.mtime))
            return
        if os.path.lexists(path):
            if os.path.isdir(path) and not os.path.islink(path):
                raise self._refuse(member, "is a file where the archive already put a folder")
            os.unlink(path)  # a later copy of the same file wins, as with tar
            self.files.discard(rel)
        if member.kind == "hardlink":
            target = self._clean(member, member.link, "is a hard link that ")
            if target not in self.files:
                raise self._refuse(
                    member, f"is a hard link to {member.link!r}, not a file unpacked before it"
                )
            os.link(os.path.join(self.root, target), path, follow_symlinks=False)
        else:
            self._write(path, opener, member)
        self.files.add(rel)

    def _write(self, path: str, opener: Callable[[], IO[bytes]], member: Member) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        with os.fdopen(fd, "wb") as out, opener() as data:
            shutil.copyfileobj(data, out, BLOCK)
        os.chmod(path, 0o755 if member.mode & 0o111 else 0o644)
        if member.mtime is not None:  # autotools compares timestamps; keep the archive's
            os.utime(path, (member.mtime, member.mtime))

    def _check_link_target(self, member: Member, rel: str) -> None:
        target = member.link
        if not target:
            raise self._refuse(member, "is a symlink with an empty target")
        if target.startswith("/"):
            raise self._refuse(member, f"is a symlink to the absolute path {target!r}")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
        if resolved == ".." or resolved.startswith("../"):
            raise self._refuse(member, f"is a symlink to {target!r}, outside the destination")

    def _make_links(self) -> None:
        for member, rel in self.links:
            path = os.path.join(self.root, rel)
            if os.path.lexists(path):
                raise self._refuse(member, "is a symlink where the archive also put a file or folder")
            self._parent_ready(member, rel)
            os.symlink(member.link, path)
        # Only now, with every link in place, does resolution show chains such as a -> . that
        # make b -> a/../x leave the root even though each link looked harmless on its own.
        for member, rel in self.links:
            if not self._inside(os.path.join(self.root, rel)):
                raise self._refuse(member, f"is a symlink to {member.link!r} that resolves outside")


_Entries = Iterator[tuple[Member, Callable[[], IO[bytes]]]]


@contextmanager
def _members(archive: Path) -> Iterator[_Entries]:
    with archive.open("rb") as handle:
        magic = handle.read(4)
    if magic[:2] == b"PK":
        with zipfile.ZipFile(archive) as zf:
            yield _zip_members(zf)
    else:
        with tarfile.open(archive, "r:*") as tf:
            yield _tar_members(tf)


def _tar_members(tf: tarfile.TarFile) -> _Entries:
    for info in tf:  # one pass: compressed tars are never decompressed twice
        if info.isreg():
            kind = "file"
        elif info.isdir():
            kind = "dir"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hardlink"
        elif info.ischr() or info.isblk():
            kind = "device file"
        elif info.isfifo():
            kind = "fifo"
        else:
            kind = f"member of unsupported tar type {info.type!r}"
        member = Member(info.name, kind, info.mode, info.mtime, info.linkname)
        yield member, _tar_opener(tf, info)


def _tar_opener(tf: tarfile.TarFile, info: tarfile.TarInfo) -> Callable[[], IO[bytes]]:
    def opener() -> IO[bytes]:
        data = tf.extractfile(info)
        assert data is not None  # only called for regular files
        return data

    return opener


def _zip_members(zf: zipfile.ZipFile) -> _Entries:
    for info in zf.infolist():
        mode = info.external_attr >> 16 if info.create_system == 3 else 0  # 3: made on Unix
        fmt = stat.S_IFMT(mode)
        link = ""
        if info.is_dir() or fmt == stat.S_IFDIR:
            kind = "dir"
        elif fmt == stat.S_IFLNK:
            kind = "symlink"
            link = zf.read(info).decode("utf-8", "surrogateescape")
        elif fmt in (0, stat.S_IFREG):
            kind = "file"
        elif fmt == stat.S_IFIFO:
            kind = "fifo"
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            kind = "device file"
        else:
            kind = "special file"
        try:
            mtime: float | None = time.mktime((*info.date_time, 0, 0, -1))
        except (OverflowError, ValueError):
            mtime = None
        yield Member(info.filename, kind, mode, mtime, link), _zip_opener(zf, info)


def _zip_opener(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    return lambda: zf.open(info)
