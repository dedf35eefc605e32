"""A recipe's ``source:`` entry, checked for shape, and a fetched source with its identity.

The identity (an archive's sha256, a git commit, a local tree's content hash) is what goes into
the build key and the record; fetching is :mod:`pmpm.sources.cache`'s job.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from pmpm.errors import PmpmError

if TYPE_CHECKING:
    from packaging.requirements import Requirement

KINDS = ("url", "git", "pypi", "path")
_EXTRA_KEYS = {"url": {"sha256"}, "git": {"ref"}, "pypi": {"sha256"}, "path": set()}
HEX64 = re.compile(r"[0-9a-f]{64}")
COMMIT = re.compile(r"[0-9a-f]{40}")


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
        return _requirement(self.pypi or "").name

    @property
    def pypi_version(self) -> str:
        return next(iter(_requirement(self.pypi or "").specifier)).version


@dataclass(frozen=True)
class FetchedSource:
    """A source ready to unpack, with the identity that names exactly what will be built."""

    spec: SourceSpec
    identity: str  # "sha256:<hex>" (url, pypi), "git:<commit>", "tree:<hex>" (path)
    archive: Path | None  # the cached archive (url, pypi)
    origin: str  # URL that served the bytes (a cache hit: the first URL), git URL, name==version, path


def sdist_key(filename: str) -> tuple[str, Version] | None:
    """The (normalised name, version) an sdist's file name says, as a `pypi:` spec names one."""
    for suffix in (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz"):
        if filename.endswith(suffix):
            name, _, version = filename[: -len(suffix)].rpartition("-")
            try:
                return canonicalize_name(name), Version(version)
            except InvalidVersion:
                return None
    return None


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
    if not HEX64.fullmatch(text):
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


def _requirement(text: str) -> Requirement:
    """``text`` parsed as a PEP 508 requirement. packaging's requirement parser (with its
    markers and specifiers, ~25 ms to import) loads only for a recipe with a ``pypi:`` source."""
    from packaging.requirements import Requirement

    return Requirement(text)


def _parse_pypi(value: Any, where: str) -> str:
    bad = _spec_error(f"pypi must be pinned as 'name==version', not {value!r}", where)
    if not isinstance(value, str):
        raise bad
    from packaging.requirements import InvalidRequirement

    try:
        req = _requirement(value)
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
