"""Recipe sources: fetched once, identified by content, reusable without a network.

A compiled package is only reproducible if pmpm knows exactly which bytes it built, so every source
gets an identity that goes into the build key and the record: the sha256 of an archive, the commit
of a git checkout, or a content hash of a local tree. Archives live in a cache keyed by that sha256,
which makes a second run (or an air-gapped machine seeded with ``import_dir`` or
``PMPM_SOURCE_MIRRORS``) need no network at all, and makes a changed upstream file an error instead
of a silent different build.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pmpm.errors import PmpmError
from pmpm.extract import BLOCK, extract_archive
from pmpm.fsutil import atomic_write_text, sha256_file

KINDS = ("url", "git", "pypi", "path")
_EXTRA_KEYS = {"url": {"sha256"}, "git": {"ref"}, "pypi": {"sha256"}, "path": set()}
_HEX64 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# Folders a local tree's identity ignores: VCS data, bytecode and the build output an in-tree build
# leaves behind, which would otherwise change the identity after every build and force a rebuild.
SKIPPED_DIRS = frozenset({".git", "__pycache__", "build", "_build"})
SKIPPED_SUFFIXES = (".egg-info",)
TIMEOUT = (15, 120)  # connect, read (seconds between bytes): a stalled mirror fails over to the next


@dataclass(frozen=True)
class SourceSpec:
    """A recipe's ``source:`` entry, checked for shape so that fetching never meets a surprise."""

    kind: str  # "url" | "git" | "pypi" | "path"
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    git: str | None = None
    ref: str | None = None
    pypi: str | None = None
    path: Path | None = None
    where: str | None = field(default=None, compare=False)  # the recipe, for messages

    @classmethod
    def from_dict(cls, data: Any, *, where: str, base_dir: Path) -> SourceSpec:
        """Relative ``path:`` and local ``git:`` entries are relative to the recipe's folder."""
        if not isinstance(data, dict):
            raise _spec_error(f"must be a mapping with one of {', '.join(KINDS)}", where)
        kinds = [k for k in KINDS if k in data]
        if len(kinds) != 1:
            found = f"found {' and '.join(kinds)}" if kinds else "found none"
            raise _spec_error(f"needs exactly one of {', '.join(KINDS)}; {found}", where)
        kind = kinds[0]
        allowed = {kind, *_EXTRA_KEYS[kind]}
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise _spec_error(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for a {kind} source "
                f"(allowed: {', '.join(sorted(allowed))})",
                where,
            )
        value = data[kind]
        if kind == "url":
            return cls("url", urls=_parse_urls(value, where), sha256=_parse_sha256(data, where), where=where)
        if kind == "git":
            return cls(
                "git", git=_parse_git(value, where, base_dir), ref=_parse_ref(data, where), where=where
            )
        if kind == "pypi":
            sha = _parse_sha256(data, where) if "sha256" in data else None
            return cls("pypi", pypi=_parse_pypi(value, where), sha256=sha, where=where)
        if not isinstance(value, str) or not value:
            raise _spec_error("path must be a folder name", where)
        return cls("path", path=Path(os.path.abspath(base_dir / Path(value).expanduser())), where=where)

    @property
    def pypi_name(self) -> str:
        return Requirement(self.pypi or "").name

    @property
    def pypi_version(self) -> str:
        return next(iter(Requirement(self.pypi or "").specifier)).version


@dataclass(frozen=True)
class FetchedSource:
    """A source ready to unpack, with the identity that names exactly what will be built."""

    spec: SourceSpec
    identity: str  # "sha256:<hex>" (url, pypi), "git:<commit>", "tree:<hex>" (path)
    archive: Path | None  # the cached archive (url, pypi)
    origin: str  # URL that served the bytes (a cache hit: the first URL), git URL, name==version, path


class SourceCache:
    """Archives under ``root/by-sha256/<hex>/<file name>``, git mirrors under ``root/git/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._mirror_hashes: dict[Path, tuple[int, int, str]] = {}

    @classmethod
    def default(cls) -> SourceCache:
        """Beside pmpm's package cache, so ``PMPM_CACHE_DIR`` moves (and isolates) both."""
        from pmpm.conda import cache_dir

        return cls(cache_dir() / "sources")

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
            return self._receive(_chunks(handle), file.name, expected=None)

    def import_dir(self, folder: Path) -> dict[Path, str]:
        """Add every file below ``folder``: drop tarballs into a folder, import, build offline."""
        folder = Path(folder)
        if not folder.is_dir():
            raise PmpmError(f"cannot import {folder} into the source cache: not a folder")
        return {file: self.add_file(file) for file in _files_below(folder)}

    def _receive(self, chunks: Iterable[bytes], name: str, *, expected: str | None) -> str:
        """Stream into a temp file beside the store; only a verified file is renamed into place."""
        from pmpm.diskspace import needs_space

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
                self._receive(_chunks(handle), mirrored.name, expected=sha256)
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
            return _fetch_path(spec, self.root / "tree-hashes")
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
                self._receive(_url_chunks(url), _url_name(url), expected=spec.sha256)
            except _Mismatch as exc:
                failures.append(f"{url}: sha256 mismatch: expected {spec.sha256}, got {exc.actual}")
                continue
            except _FetchFailed as exc:
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
            _clone_mirror(spec.git, mirror, spec.where)
        elif not offline and not (_COMMIT.fullmatch(spec.ref) and _resolve(mirror, spec.ref)):
            _git(["fetch", "--prune", "--quiet", "origin"], mirror, f"cannot update {spec.git}", spec.where)
        commit = _resolve(mirror, spec.ref)
        if commit is None:
            known = _git(
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
            _git(
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
                sha = self._receive(_chunks(handle), sdist.name, expected=None)
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
        candidates = [f for f in cached if _HEX64.fullmatch(f.parent.name) and not f.name.startswith(".")]
        for folder in _mirror_folders():
            candidates.extend(_files_below(folder))
        for file in candidates:
            if _sdist_key(file.name) == want:
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


class _FetchFailed(Exception):
    """One URL failed; the reason ends up in the list of all URLs tried."""


def _spec_error(message: str, where: str) -> PmpmError:
    return PmpmError(f"source: {message}", where=where)


def _parse_urls(value: Any, where: str) -> tuple[str, ...]:
    urls = [value] if isinstance(value, str) else value
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
        raise _spec_error("url must be a URL or a list of mirror URLs of the same file", where)
    for url in urls:
        scheme = urlparse(url).scheme
        if scheme not in ("http", "https", "file"):
            raise PmpmError(
                f"source: unsupported URL {url!r}",
                where=where,
                hint="use http://, https:// or file:///absolute/path; for a local folder use path:",
            )
    return tuple(urls)


def _parse_sha256(data: dict[str, Any], where: str) -> str:
    if "sha256" not in data:
        raise PmpmError(
            "source: a url source needs sha256, so pmpm can tell the file is the one you meant",
            where=where,
            hint="download the file, make sure it is genuine (signature, release page), then add "
            "`sha256: <output of sha256sum FILE>`; pmpm does not fill it in from an unchecked download",
        )
    value = data["sha256"]
    text = value.strip().lower().removeprefix("sha256:") if isinstance(value, str) else ""
    if not _HEX64.fullmatch(text):
        raise _spec_error(f"sha256 must be 64 hex digits (quoted), not {value!r}", where)
    return text


def _parse_git(value: Any, where: str, base_dir: Path) -> str:
    if not isinstance(value, str) or not value or value.startswith("-"):
        raise _spec_error("git must be a repository URL or folder", where)
    if "://" in value or re.match(r"^[\w.-]+@[\w.-]+:", value):
        return value
    return os.path.abspath(base_dir / Path(value).expanduser())


def _parse_ref(data: dict[str, Any], where: str) -> str:
    ref = data.get("ref")
    if ref is None:
        raise PmpmError(
            "source: a git source needs ref (a branch, tag or commit)",
            where=where,
            hint="a tag or a full commit hash keeps the build reproducible",
        )
    if not isinstance(ref, str) or not ref or ref.startswith("-") or any(c.isspace() for c in ref):
        raise PmpmError(
            f"source: ref must be a branch, tag or commit name, not {ref!r}",
            where=where,
            hint="quote refs such as '1.10' so YAML keeps them as text",
        )
    return ref


def _parse_pypi(value: Any, where: str) -> str:
    bad = _spec_error(f"pypi must be pinned as 'name==version', not {value!r}", where)
    if not isinstance(value, str):
        raise bad
    try:
        req = Requirement(value)
    except InvalidRequirement:
        raise bad from None
    specs = list(req.specifier)
    if req.extras or req.marker or req.url or len(specs) != 1 or specs[0].operator != "==":
        raise bad
    try:
        Version(specs[0].version)
    except InvalidVersion:
        raise bad from None
    return f"{req.name}=={specs[0].version}"


def _sdist_key(filename: str) -> tuple[str, Version] | None:
    for suffix in (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"):
        if filename.endswith(suffix):
            name, _, version = filename[: -len(suffix)].rpartition("-")
            try:
                return canonicalize_name(name), Version(version)
            except InvalidVersion:
                return None
    return None


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


def _chunks(handle: Any) -> Iterator[bytes]:
    while chunk := handle.read(BLOCK):
        yield chunk


def _url_name(url: str) -> str:
    return _safe_name(unquote(urlparse(url).path).rstrip("/").rsplit("/", 1)[-1])


def _safe_name(name: str) -> str:
    name = name.replace("/", "_").lstrip(".")
    return name or "source"


def _url_chunks(url: str) -> Iterator[bytes]:
    """Chunks of the file behind ``url``; failures become ``_FetchFailed`` with a short reason."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise _FetchFailed(f"file URL on another host ({parsed.netloc}) is not supported")
        path = Path(url2pathname(unquote(parsed.path)))
        try:
            handle = path.open("rb")
        except OSError as exc:
            raise _FetchFailed(exc.strerror or str(exc)) from None
        with handle:
            yield from _chunks(handle)
        return
    import requests  # not needed by runs that find everything cached

    try:
        with requests.get(url, stream=True, timeout=TIMEOUT) as response:
            if response.status_code != 200:
                raise _FetchFailed(f"HTTP {response.status_code} {response.reason}")
            yield from response.iter_content(BLOCK)
    except requests.RequestException as exc:
        raise _FetchFailed(_reason(exc)) from None


def _reason(exc: Exception) -> str:
    """requests nests the cause three wrappers deep; users need only the last one."""
    import requests

    if isinstance(exc, requests.Timeout):
        return f"timed out after {TIMEOUT[0]} s (connect) / {TIMEOUT[1]} s (read)"
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    if isinstance(exc, requests.ConnectionError) and errno:
        return f"cannot connect: {errno.group(0)}"
    return f"{type(exc).__name__}: {exc}"


# -- git plumbing --------------------------------------------------------------------------------


def _git(args: list[str], cwd: Path | None, what: str, where: str | None) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
    try:
        result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise PmpmError("git is not installed", where=where, hint="install git to use git: sources") from None
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-10:])
        raise PmpmError(f"{what}:\n{tail}", where=where, hint="check the repository URL and your access")
    return result.stdout


def _clone_mirror(url: str, mirror: Path, where: str | None) -> None:
    """Clone beside the final place and rename, so a killed clone never looks like a mirror."""
    mirror.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{mirror.name}.", dir=mirror.parent))
    try:
        _git(["clone", "--mirror", "--quiet", "--", url, str(tmp)], None, f"cannot clone {url}", where)
        try:
            os.rename(tmp, mirror)
        except OSError:
            if not mirror.is_dir():  # else another run mirrored it first: use theirs
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _resolve(mirror: Path, ref: str) -> str | None:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=mirror,
        capture_output=True,
        text=True,
        check=False,
    )
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and _COMMIT.fullmatch(commit) else None


# -- local trees ---------------------------------------------------------------------------------


def stat_cache_for(stat_caches: Path, tree: Path) -> Path:
    return stat_caches / hashlib.sha256(os.fsencode(Path(tree).resolve())).hexdigest()[:24]


def _fetch_path(spec: SourceSpec, stat_caches: Path) -> FetchedSource:
    assert spec.path is not None
    if not spec.path.is_dir():
        raise PmpmError(
            f"source folder {spec.path} does not exist or is not a folder",
            where=spec.where,
            hint="path: is relative to the recipe's folder",
        )
    cache = stat_cache_for(stat_caches, spec.path)
    return FetchedSource(spec, f"tree:{hash_tree(spec.path, stat_cache=cache)}", None, str(spec.path))


def hash_tree(root: Path, *, stat_cache: Path | None = None) -> str:
    """Content identity of a folder: names, executable bits, file contents and link targets.

    Timestamps, owners and permission bits other than "executable" are left out, so touching a
    file or checking it out again with another umask does not rebuild; the folders in
    ``SKIPPED_DIRS`` (and ``*.egg-info``) are left out because builds write them.

    ``stat_cache`` (a file) remembers each file's sha256 with its size, mtime, ctime and inode:
    a file whose stat is unchanged is not read again, so a tree of thousands of files under
    development costs a stat per file, plus reading what was edited.
    """
    cache = _read_stat_cache(stat_cache)
    known: dict[str, list] = cache["stats"]
    fresh: dict[str, list] = {}
    entries: list[tuple[bytes, str, str]] = []  # (relative path, kind, absolute path)
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(os.path.join(root, rel_dir)) as scan:
            for entry in scan:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if entry.is_symlink():
                    entries.append((os.fsencode(rel), "l", entry.path))
                elif entry.is_dir():
                    if entry.name in SKIPPED_DIRS or entry.name.endswith(SKIPPED_SUFFIXES):
                        continue
                    entries.append((os.fsencode(rel), "d", entry.path))
                    stack.append(rel)
                elif entry.is_file():
                    if entry.name != ".git":  # a worktree's or submodule's pointer file
                        entries.append((os.fsencode(rel), "f", entry.path))
                else:
                    entries.append((os.fsencode(rel), "o", entry.path))  # fifo, socket: never read
    digest = hashlib.sha256()
    for rel_bytes, kind, path in sorted(entries):
        if kind == "f":
            st = os.stat(path)
            mode = "755" if st.st_mode & 0o111 else "644"
            stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
            rel = os.fsdecode(rel_bytes)
            cached = known.get(rel)
            detail = cached[4] if cached and cached[:4] == stamp else sha256_file(Path(path))
            fresh[rel] = [*stamp, detail]
        elif kind == "l":
            mode, detail = "", os.readlink(path)
        else:
            mode, detail = "", ""
        digest.update(b"%s\0%s\0%s\0%s\n" % (rel_bytes, kind.encode(), mode.encode(), os.fsencode(detail)))
    result = digest.hexdigest()
    if stat_cache is not None and (fresh != known or result not in cache["snapshots"]):
        # the last few states by tree hash, so a rebuild can name the files that changed
        snapshots = {k: v for k, v in cache["snapshots"].items() if k != result}
        snapshots = dict(list(snapshots.items())[-(_SNAPSHOTS - 1) :])
        snapshots[result] = {rel: entry[4] for rel, entry in fresh.items()}
        atomic_write_text(stat_cache, json.dumps({"stats": fresh, "snapshots": snapshots}))
    return result


_SNAPSHOTS = 3


def _read_stat_cache(path: Path | None) -> dict[str, dict]:
    empty: dict[str, dict] = {"stats": {}, "snapshots": {}}
    if path is None:
        return empty
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return empty
    if not isinstance(data, dict) or not isinstance(data.get("stats"), dict):
        return empty
    return {"stats": data["stats"], "snapshots": data.get("snapshots") or {}}


def changed_files(stat_cache: Path, old: str, new: str) -> list[str] | None:
    """The files that differ between two hashed states of one local tree (``tree:<hash>``
    identities), when both are still remembered; None when not."""
    snapshots = _read_stat_cache(stat_cache)["snapshots"]
    before, after = snapshots.get(old.removeprefix("tree:")), snapshots.get(new.removeprefix("tree:"))
    if before is None or after is None:
        return None
    return sorted(rel for rel in before.keys() | after.keys() if before.get(rel) != after.get(rel))
