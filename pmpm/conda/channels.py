"""Channel names in an env file → the URLs the solver reads.

conda's rules, so an env file means here what it means to conda: a bare name (``conda-forge``,
``pytorch/label/nightly``) is appended to the channel alias; ``defaults`` is Anaconda's main and r;
``nodefaults`` drops ``defaults``; URLs are taken as written; local folders become ``file://``
URLs. The alias can be moved to a mirror (``--channel-alias`` or ``PMPM_CHANNEL_ALIAS``, like
conda's ``channel_alias``), which is how sites without direct access use pmpm.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from pmpm.errors import PmpmError, located

DEFAULT_ALIAS = "https://conda.anaconda.org/"
DEFAULTS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")
#: used when an env file lists no channel at all (conda would use its ``defaults``; the HPC
#: community has largely moved to conda-forge, as miniforge does)
FALLBACK = ("conda-forge",)


@dataclass(frozen=True)
class ResolvedChannel:
    """One channel as the solver sees it, and where the user wrote it."""

    written: str
    url: str  # always ends with "/"
    where: str | None = None  # file:line of the env file entry

    @property
    def local_path(self) -> Path | None:
        """The folder behind a ``file://`` channel: pmpm checks its packages' sha256 itself."""
        if not self.url.startswith("file://"):
            return None
        return Path(unquote(urlparse(self.url).path))


def channel_alias(override: str | None = None) -> str:
    alias = override or os.environ.get("PMPM_CHANNEL_ALIAS") or DEFAULT_ALIAS
    return alias if alias.endswith("/") else alias + "/"


def _is_url(text: str) -> bool:
    return "://" in text


def _is_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~")) or text in (".", "..")


def resolve_one(
    text: str, *, alias: str, base_dir: Path | None = None, where: str | None = None
) -> list[ResolvedChannel]:
    """Resolve one written channel; ``defaults`` yields two."""
    if text == "defaults":
        return [ResolvedChannel(text, url + "/", where) for url in DEFAULTS]
    if _is_url(text):
        url = text
        if url.startswith("file://"):
            folder = Path(unquote(urlparse(url).path))
            _require_folder(folder, text, where)
    elif _is_path(text):
        folder = Path(text).expanduser()
        if not folder.is_absolute():
            folder = (base_dir or Path.cwd()) / folder
        folder = folder.resolve()
        _require_folder(folder, text, where)
        url = folder.as_uri()
    else:
        url = alias + text.strip("/")
    return [ResolvedChannel(text, url.rstrip("/") + "/", where)]


def _require_folder(folder: Path, text: str, where: str | None) -> None:
    if not folder.is_dir():
        raise PmpmError(
            f"channel {text!r} is a local folder that does not exist ({folder})",
            where=where,
            hint="create the channel (e.g. index a folder of packages) or fix the path",
        )


def resolve_channels(spec, *, alias_override: str | None = None) -> list[ResolvedChannel]:
    """All channels of an EnvSpec in priority order, plus those named only in ``channel::pkg``.

    Channels named only inside a spec are appended last, as conda does, so ``bioconda::x`` works
    without listing bioconda; the spec itself still pins ``x`` to that channel.
    """
    alias = channel_alias(alias_override)
    base = spec.path.parent
    written = [(c.text, c.line) for c in spec.channels]
    if not written:
        written = [(name, None) for name in FALLBACK]
    result: list[ResolvedChannel] = []
    for text, line in written:
        if spec.nodefaults and text == "defaults":
            continue
        result += resolve_one(text, alias=alias, base_dir=base, where=located(spec.path, line))
    for dep in spec.dependencies:
        if dep.channel:
            result += resolve_one(dep.channel, alias=alias, base_dir=base, where=located(spec.path, dep.line))
    seen: set[str] = set()
    unique = []
    for channel in result:
        if channel.url not in seen:
            seen.add(channel.url)
            unique.append(channel)
    return unique


def spec_for_solver(dep, *, alias_override: str | None = None, base_dir: Path | None = None) -> str:
    """A dependency's canonical spec, its channel given as the resolved URL.

    rattler would otherwise resolve ``conda-forge::`` against its own default alias and miss a
    mirror given with ``--channel-alias``. ``defaults::`` means Anaconda's main channel.
    """
    if not dep.channel:
        return dep.canonical
    resolved = resolve_one(dep.channel, alias=channel_alias(alias_override), base_dir=base_dir)[0]
    return f"{resolved.url.rstrip('/')}::{dep.canonical}"
