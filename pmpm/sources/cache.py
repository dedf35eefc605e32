"""Recipe sources: fetched once, identified by content, reusable without a network.

A compiled package is only reproducible if pmpm knows exactly which bytes it built, so every source
gets an identity that goes into the build key and the record: the sha256 of an archive, the commit
of a git checkout, or a content hash of a local tree. Archives live in a cache keyed by that sha256,
which makes a second run (or an air-gapped machine seeded with ``import_dir`` or
``PMPM_SOURCE_MIRRORS``) need no network at all, and makes a changed upstream file an error instead
of a silent different build.

The ``source:`` entry and the fetched source are :mod:`pmpm.sources.spec`'s, local trees
:mod:`pmpm.sources.tree`'s; their public names are importable from here too.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from packaging.utils import canonicalize_name
from packaging.version import Version

from pmpm import paths
from pmpm.env.diskspace import needs_space
from pmpm.errors import PmpmError
from pmpm.fsutil import atomic_write_text, sha256_file
from pmpm.sources.extract import extract_archive
from pmpm.sources.spec import COMMIT, HEX64, FetchedSource, SourceSpec, sdist_key
from pmpm.sources.transport import (
    FetchFailed,
    chunks,
    clone_mirror,
    resolve_ref,
    run_git,
    url_chunks,
)
from pmpm.sources.tree import fetch_path


class SourceCache:
    """Archives under ``root/by-sha256/<hex>/<file name>``, git mirrors under ``root/git/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._mirror_hashes: dict[Path, tuple[int, int, str]] = {}

    @classmethod
    def default(cls) -> SourceCache:
        """Beside pmpm's package cache, so ``PMPM_CACHE_DIR`` moves (and isolates) both."""
        return cls(paths.sources_dir())

    # -- the cache itself ----------------------------------------------------------------------

    @property
    def _store(self) -> Path:
        path = self.root / "by-sha256"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def find(self, sha256: str) -> Path | None:
        """The cached file with this sha256; files only ever arrive verified, so no re-hash."""
        folder = self.root / "by-sha256" / sha256
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.is_file() and not entry.name.startswith("."):
                    return entry
        return None

    def add_file(self, file: Path) -> str:
        """Seed the cache with a file (a tarball fetched by hand, say); returns its sha256."""
        file = Path(file)
        if not file.is_file():
            raise PmpmError(f"cannot add {file} to the source cache: not a file")
        with file.open("rb") as handle:
            return self._receive(chunks(handle), file.name, expected=None)

    def import_dir(self, folder: Path) -> dict[Path, str]:
        """Add every file below ``folder``: drop tarballs into a folder, import, build offline."""
        folder = Path(folder)
        if not folder.is_dir():
            raise PmpmError(f"cannot import {folder} into the source cache: not a folder")
        return {file: self.add_file(file) for file in _files_below(folder)}

    def _receive(self, chunks: Iterable[bytes], name: str, *, expected: str | None) -> str:
        """Stream into a temp file beside the store; only a verified file is renamed into place."""
        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=self._store)
        digest = hashlib.sha256()
        try:
            with (
                needs_space(f"storing the source {name} in the source cache", self._store),
                os.fdopen(fd, "wb") as out,
            ):
                for chunk in chunks:
                    digest.update(chunk)
                    out.write(chunk)
            actual = digest.hexdigest()
            if expected is not None and actual != expected:
                raise _Mismatch(actual)
            self._commit(Path(tmp), actual, name)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return actual

    def _commit(self, tmp: Path, sha256: str, name: str) -> Path:
        existing = self.find(sha256)
        if existing:
            return existing
        folder = self._store / sha256
        folder.mkdir(exist_ok=True)
        os.chmod(tmp, 0o644)
        final = folder / _safe_name(name)
        os.replace(tmp, final)
        return final

    # -- mirror folders (PMPM_SOURCE_MIRRORS) ----------------------------------------------------

    def _from_mirrors(self, sha256: str, names: set[str]) -> Path | None:
        """Hash mirror files lazily, likely names first, and remember hashes for the process."""
        for folder in _mirror_folders():
            files = sorted(_files_below(folder), key=lambda f: (f.name not in names, str(f)))
            for file in files:
                if self._mirror_sha256(file) == sha256:
                    return file
        return None

    def _mirror_sha256(self, file: Path) -> str | None:
        try:
            st = file.stat()
        except OSError:
            return None
        known = self._mirror_hashes.get(file)
        if known and known[:2] == (st.st_size, st.st_mtime_ns):
            return known[2]
        try:
            sha = sha256_file(file)
        except OSError:
            return None
        self._mirror_hashes[file] = (st.st_size, st.st_mtime_ns, sha)
        return sha

    def _cached_or_mirrored(self, sha256: str, names: set[str], where: str | None) -> Path | None:
        hit = self.find(sha256)
        if hit:
            return hit
        mirrored = self._from_mirrors(sha256, names)
        if mirrored is None:
            return None
        with mirrored.open("rb") as handle:
            try:
                self._receive(chunks(handle), mirrored.name, expected=sha256)
            except _Mismatch as exc:  # changed since we hashed it
                raise PmpmError(
                    f"mirror file {mirrored} changed while pmpm read it (now sha256 {exc.actual})",
                    where=where,
                ) from None
        return self.find(sha256)

    # -- fetching ------------------------------------------------------------------------------

    def fetch(self, spec: SourceSpec, *, offline: bool = False, python: str | None = None) -> FetchedSource:
        """Make the source available locally and say exactly which bytes it is."""
        if spec.kind == "url":
            return self._fetch_url(spec, offline)
        if spec.kind == "git":
            return self._fetch_git(spec, offline)
        if spec.kind == "pypi":
            return self._fetch_pypi(spec, offline, python or sys.executable)
        if spec.kind == "path":
            return fetch_path(spec, self.root / "tree-hashes")
        raise ValueError(f"unknown source kind {spec.kind!r}")

    def unpack(self, fetched: FetchedSource, dest: Path) -> Path:
        """The source tree's top folder: ``dest`` (replaced) or its single folder; paths in place."""
        spec = fetched.spec
        if spec.kind == "path":
            assert spec.path is not None
            return spec.path
        if spec.kind == "git":
            return self._export_git(fetched, Path(dest))
        assert fetched.archive is not None
        return extract_archive(fetched.archive, Path(dest), where=spec.where)

    def _fetch_url(self, spec: SourceSpec, offline: bool) -> FetchedSource:
        assert spec.sha256 is not None
        names = {_url_name(u) for u in spec.urls}
        hit = self._cached_or_mirrored(spec.sha256, names, spec.where)
        if hit:
            return FetchedSource(spec, f"sha256:{spec.sha256}", hit, spec.urls[0])
        failures: list[str] = []
        for url in spec.urls:
            if offline and not url.startswith("file:"):
                failures.append(f"{url}: not tried (offline)")
                continue
            try:
                self._receive(url_chunks(url), _url_name(url), expected=spec.sha256)
            except _Mismatch as exc:
                failures.append(f"{url}: sha256 mismatch: expected {spec.sha256}, got {exc.actual}")
                continue
            except FetchFailed as exc:
                failures.append(f"{url}: {exc}")
                continue
            return FetchedSource(spec, f"sha256:{spec.sha256}", self.find(spec.sha256), url)
        if offline and all(f.endswith("(offline)") for f in failures):
            raise PmpmError(
                f"source with sha256 {spec.sha256} is not in the source cache ({self.root}) and "
                f"pmpm is offline; it would come from: {', '.join(spec.urls)}",
                where=spec.where,
                hint="seed the cache with `SourceCache.import_dir(FOLDER)` (drop the tarballs into a "
                "folder), or list folders holding them in PMPM_SOURCE_MIRRORS (colon-separated), or "
                "run once without --offline",
            )
        mismatch = any("sha256 mismatch" in f for f in failures)
        raise PmpmError(
            "could not fetch the source from any of its URLs:\n  " + "\n  ".join(failures),
            where=spec.where,
            hint=(
                "the file at the URL is not the one the recipe names; if upstream really replaced it, "
                "check the new file is genuine and update sha256 in the recipe"
                if mismatch
                else "check the URLs, or put the file into PMPM_SOURCE_MIRRORS or the source cache"
            ),
        )

    # -- git -----------------------------------------------------------------------------------

    def _mirror_path(self, url: str) -> Path:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git"))
        return self.root / "git" / f"{hashlib.sha256(url.encode()).hexdigest()[:20]}-{stem[:40]}.git"

    def _fetch_git(self, spec: SourceSpec, offline: bool) -> FetchedSource:
        assert spec.git is not None and spec.ref is not None
        mirror = self._mirror_path(spec.git)
        if not mirror.is_dir():
            if offline:
                raise PmpmError(
                    f"no copy of git repository {spec.git} in the source cache and pmpm is offline",
                    where=spec.where,
                    hint="run once without --offline to mirror the repository",
                )
            clone_mirror(spec.git, mirror, spec.where)
        elif not offline and not (COMMIT.fullmatch(spec.ref) and resolve_ref(mirror, spec.ref)):
            run_git(
                ["fetch", "--prune", "--quiet", "origin"], mirror, f"cannot update {spec.git}", spec.where
            )
        commit = resolve_ref(mirror, spec.ref)
        if commit is None:
            known = run_git(
                ["for-each-ref", "--format=%(refname:short)", "refs/heads", "refs/tags"],
                mirror,
                "cannot list refs",
                spec.where,
            ).split()
            shown = ", ".join(known[:15]) + (", ..." if len(known) > 15 else "")
            raise PmpmError(
                f"ref {spec.ref!r} not found in git repository {spec.git}"
                + (" (offline: using the cached copy)" if offline else ""),
                where=spec.where,
                hint=f"use a branch, tag or commit of the repository; it has: {shown or 'no branches'}",
            )
        return FetchedSource(spec, f"git:{commit}", None, spec.git)

    def _export_git(self, fetched: FetchedSource, dest: Path) -> Path:
        spec = fetched.spec
        assert spec.git is not None
        commit = fetched.identity.removeprefix("git:")
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tar = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tar", dir=dest.parent)
        os.close(fd)
        try:
            run_git(
                ["archive", "--format=tar", "-o", tar, commit],
                self._mirror_path(spec.git),
                f"cannot export commit {commit} of {spec.git}",
                spec.where,
            )
            return extract_archive(Path(tar), dest, where=spec.where)
        finally:
            os.unlink(tar)

    # -- pypi ----------------------------------------------------------------------------------

    def _pypi_index(self, spec: SourceSpec) -> Path:
        version = str(Version(spec.pypi_version))
        return self.root / "pypi" / f"{canonicalize_name(spec.pypi_name)}-{version}"

    def _fetch_pypi(self, spec: SourceSpec, offline: bool, python: str) -> FetchedSource:
        """pip fetches (so the user's index and mirrors apply); afterwards the cache answers."""
        index = self._pypi_index(spec)
        if spec.sha256:
            hit = self._cached_or_mirrored(spec.sha256, set(), spec.where)
            if hit:
                return FetchedSource(spec, f"sha256:{spec.sha256}", hit, spec.pypi or "")
        elif index.is_file():
            known = index.read_text(encoding="utf-8").strip()
            hit = self.find(known)
            if hit:
                return FetchedSource(spec, f"sha256:{known}", hit, spec.pypi or "")
        if offline:
            sdist = self._pypi_by_name(spec)
            if sdist is None:
                raise PmpmError(
                    f"sdist of {spec.pypi} is not in the source cache ({self.root}) and pmpm is offline",
                    where=spec.where,
                    hint="drop the sdist into a folder listed in PMPM_SOURCE_MIRRORS or import it with "
                    "`SourceCache.import_dir(FOLDER)`, or run once without --offline",
                )
            with sdist.open("rb") as handle:
                sha = self._receive(chunks(handle), sdist.name, expected=None)
        else:
            sha = self._pip_download(spec, python)
        if spec.sha256 and sha != spec.sha256:
            raise PmpmError(
                f"sdist of {spec.pypi} has sha256 {sha}, but the recipe expects {spec.sha256}",
                where=spec.where,
                hint="check the index pip uses (pip.conf) serves the genuine file, or update sha256",
            )
        atomic_write_text(index, sha + "\n")
        return FetchedSource(spec, f"sha256:{sha}", self.find(sha), spec.pypi or "")

    def _pypi_by_name(self, spec: SourceSpec) -> Path | None:
        """Offline, an sdist is recognised by its file name: the user put it there on purpose."""
        want = (canonicalize_name(spec.pypi_name), Version(spec.pypi_version))
        cached = (self.root / "by-sha256").glob("*/*")
        candidates = [f for f in cached if HEX64.fullmatch(f.parent.name) and not f.name.startswith(".")]
        for folder in _mirror_folders():
            candidates.extend(_files_below(folder))
        for file in candidates:
            if sdist_key(file.name) == want:
                return file
        return None

    def _pip_download(self, spec: SourceSpec, python: str) -> str:
        name = canonicalize_name(spec.pypi_name)
        with tempfile.TemporaryDirectory(prefix=".pip-", dir=self._store) as tmp:
            argv = [python, "-m", "pip", "download", "--no-deps", "--no-input", "--disable-pip-version-check"]
            # Only this project as an sdist: its build backend (needed by pip to read metadata)
            # may come as a wheel, which is several times faster than building setuptools itself.
            argv += ["--no-binary", name, "-d", tmp, spec.pypi or ""]
            env = {**os.environ, "PIP_REQUIRE_VIRTUALENV": "0"}
            result = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                tail = (result.stdout + result.stderr).strip().splitlines()[-20:]
                raise PmpmError(
                    f"pip could not download the sdist of {spec.pypi}:\n" + "\n".join(tail),
                    where=spec.where,
                    hint="check the name and version exist as an sdist on the index in your pip.conf",
                )
            files = [f for f in Path(tmp).iterdir() if f.is_file()]
            if len(files) != 1 or files[0].suffix == ".whl":
                raise PmpmError(
                    f"pip download of {spec.pypi} gave {[f.name for f in files]}, not one sdist",
                    where=spec.where,
                )
            sha = sha256_file(files[0])
            self._commit(files[0], sha, files[0].name)
            return sha


# -- helpers -------------------------------------------------------------------------------------


class _Mismatch(Exception):
    def __init__(self, actual: str) -> None:
        super().__init__(actual)
        self.actual = actual


def _mirror_folders() -> list[Path]:
    value = os.environ.get("PMPM_SOURCE_MIRRORS", "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p and Path(p).expanduser().is_dir()]


def _files_below(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if path.is_file():
                yield path


def _url_name(url: str) -> str:
    return _safe_name(unquote(urlparse(url).path).rstrip("/").rsplit("/", 1)[-1])


def _safe_name(name: str) -> str:
    name = name.replace("/", "_").lstrip(".")
    return name or "source"
