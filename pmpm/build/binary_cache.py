"""The binary cache: compiled packages reused instead of built again.

Every package pmpm compiles in conda_install mode is relocatable (built in a padded prefix, see
:meth:`pmpm.build.compile_stage.Compiler.build_prefix`) and named by its build key, which leaves the
target prefix out. So a package file ``NAME-VERSION-pmpm_KEY.conda`` found anywhere is exactly
what a build would make, and installing it is all there is to do. Places searched, in order:

1. pmpm's own build channel (``~/.cache/pmpm/channel``): every build lands there;
2. ``_pmpm: {cache: DIR}``: a folder channel shared by a group (NFS, a project space); builds are
   copied into it, so colleagues and other machines of the same kind reuse them;
3. ``_pmpm: {cache: https://...}``: a read-only channel on a web server (fill it with
   ``pmpm cache push DIR`` into the folder it serves); files are checked against its repodata's
   sha256 before use.

``pmpm cache list | push DIR | prune`` look after the local build channel; ``pmpm cache check``
rebuilds packages with ``PMPM_BINARY_CACHE=off`` (the shared cache neither read nor written).

Each package's build log (``NAME-VERSION-BUILD.log``, :func:`pmpm.paths.package_log`) travels with
it: kept beside it in the build channel, copied to a shared folder and by ``cache push``, fetched
from a web server when it has one, removed by ``cache prune`` with its package. A cache hit then
installs the log of the build that made the package (:mod:`pmpm.build.provenance`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from rattler.index import index_fs

from pmpm import paths
from pmpm.conda.engine import host_subdir
from pmpm.errors import PmpmError
from pmpm.fsutil import temp_beside

Say = Callable[[str], None]


def build_channel() -> Path:
    return paths.build_channel()


def index(channel: Path) -> None:
    """Keep a folder's repodata current, so it serves as a channel (and a cache)."""
    for subdir in ("noarch", host_subdir()):
        (channel / subdir).mkdir(parents=True, exist_ok=True)

    async def go() -> None:
        await index_fs(channel, write_zst=False, write_shards=False)
        await asyncio.sleep(0.05)

    asyncio.run(go())


class BinaryCache:
    def __init__(self, setting: str | None, base_dir: Path, say: Say) -> None:
        self.say = say
        self.folder: Path | None = None
        self.url: str | None = None
        if setting:
            if setting.startswith(("http://", "https://")):
                self.url = setting.rstrip("/")
            else:
                path = Path(setting.removeprefix("file://")).expanduser()
                self.folder = path if path.is_absolute() else (base_dir / path).resolve()
        self._remote_index: dict[str, dict] | None = None
        self._stored = False
        if os.environ.get("PMPM_BINARY_CACHE") == "off":  # `pmpm cache check`'s rebuilds
            self.folder = self.url = None

    def find(self, filename: str) -> Path | None:
        for channel in (build_channel(), self.folder):
            if channel is not None and (channel / host_subdir() / filename).is_file():
                return channel / host_subdir() / filename
        if self.url is not None:
            return self._download(filename)
        return None

    def used(self, package: Path) -> None:
        """Mark a package as just used: ``pmpm cache prune`` removes the least recently used."""
        os.utime(package)

    def store(self, package: Path) -> None:
        """A package just built goes to the shared folder too, with its build log."""
        if self.folder is None:
            return
        _copy_with_log(package, self.folder / package.parent.name / package.name)
        self._stored = True

    def finish(self) -> None:
        if self._stored and self.folder is not None:
            index(self.folder)
            self.say(f"copied the new builds to the binary cache {self.folder}")

    def _download(self, filename: str) -> Path | None:
        import requests  # heavy (~50 ms): only a web cache's runs pay for it

        subdir = host_subdir()
        if self._remote_index is None:
            try:
                reply = requests.get(f"{self.url}/{subdir}/repodata.json", timeout=30)
                reply.raise_for_status()
                self._remote_index = reply.json().get("packages.conda", {})
            except (requests.RequestException, ValueError) as exc:
                self.say(f"note: the binary cache {self.url} cannot be read ({exc}); building instead")
                self._remote_index = {}
        entry = self._remote_index.get(filename)
        if entry is None:
            return None
        dest = build_channel() / subdir / filename
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_beside(dest)
        try:
            digest = hashlib.sha256()
            with requests.get(f"{self.url}/{subdir}/{filename}", stream=True, timeout=60) as reply:
                reply.raise_for_status()
                with tmp.open("wb") as handle:
                    for chunk in reply.iter_content(1 << 20):
                        digest.update(chunk)
                        handle.write(chunk)
        except requests.RequestException as exc:
            tmp.unlink(missing_ok=True)
            self.say(f"note: {filename} could not be fetched from {self.url} ({exc}); building instead")
            return None
        if digest.hexdigest() != entry.get("sha256"):
            tmp.unlink(missing_ok=True)
            raise PmpmError(
                f"{self.url}/{subdir}/{filename} does not match the sha256 in the cache's repodata",
                where="_pmpm.cache",
                hint="the cache is damaged or was changed while read: re-index it, or remove the file",
            )
        os.replace(tmp, dest)
        self._download_log(f"{self.url}/{subdir}/{paths.package_log(dest).name}", paths.package_log(dest))
        return dest

    def _download_log(self, url: str, dest: Path) -> None:
        """The package's build log, when the server has one (a log is no input: not checked)."""
        import requests  # loaded already by _download

        tmp = temp_beside(dest)
        try:
            with requests.get(url, timeout=60) as reply:
                if reply.status_code != 200:
                    return
                tmp.write_bytes(reply.content)
            os.replace(tmp, dest)
        except requests.RequestException as exc:
            self.say(f"note: the build log {url} could not be fetched ({exc})")
        finally:
            tmp.unlink(missing_ok=True)


def _copy_with_log(package: Path, dest: Path) -> None:
    """Copy a package (under a temporary name, then renamed) and the build log beside it."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for source, target in ((paths.package_log(package), paths.package_log(dest)), (package, dest)):
        if source.is_file():
            tmp = temp_beside(target)
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)


# -- pmpm cache list | push | prune ----------------------------------------------------------------


def _packages(channel: Path) -> list[Path]:
    return sorted(p for p in channel.glob("*/*.conda") if not p.name.startswith("."))


def _describe(package: Path) -> tuple[str, str, str]:
    name, version, build = package.name.removesuffix(".conda").rsplit("-", 2)
    return name, version, build


def list_command(folder: Path | None, say: Say) -> int:
    channel = folder or build_channel()
    packages = _packages(channel)
    if not packages:
        say(f"no compiled packages in {channel}")
        return 0
    say(f"{len(packages)} compiled packages in {channel}:")
    for package in packages:
        name, version, build = _describe(package)
        st = package.stat()
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(st.st_mtime))
        say(f"  {name:<24} {version:<12} {build:<20} {st.st_size / 1e6:8.2f} MB  last used {used}")
    return 0


def push_command(dest: Path, names: list[str], say: Say) -> int:
    """Copy packages from the local build channel into a shared folder channel and index it."""
    packages = [p for p in _packages(build_channel()) if not names or _describe(p)[0] in names]
    missing = sorted(set(names) - {_describe(p)[0] for p in packages})
    if missing:
        raise PmpmError(
            f"not in the local build channel: {', '.join(missing)}",
            hint="build them first (pmpm conda_install), or see `pmpm cache list`",
        )
    copied = 0
    for package in packages:
        target = dest / package.parent.name / package.name
        if target.is_file() and target.stat().st_size == package.stat().st_size:
            continue
        _copy_with_log(package, target)
        copied += 1
    index(dest)
    say(f"pushed {copied} packages to {dest} ({len(packages) - copied} were there already)")
    return 0


def prune_command(older_than_days: float | None, everything: bool, say: Say) -> int:
    """Remove packages not used for a while (installed or built: either refreshes the time)."""
    if not everything and older_than_days is None:
        raise PmpmError("say what to prune", hint="use --older-than DAYS, or --all")
    limit = time.time() - (older_than_days or 0) * 86400
    channel = build_channel()
    removed = []
    for package in _packages(channel):
        if everything or package.stat().st_mtime < limit:
            package.unlink()
            paths.package_log(package).unlink(missing_ok=True)
            removed.append(package.name)
    if removed:
        index(channel)
    say(f"removed {len(removed)} packages from {channel}" + (": " + ", ".join(removed) if removed else ""))
    return 0
