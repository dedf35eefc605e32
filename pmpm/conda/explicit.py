"""Install an ``@EXPLICIT`` list (what ``conda list --explicit [--md5|--sha256]`` prints): the
exact package files, no solve.

The list is read with py-rattler's own parser (``ExplicitEnvironmentSpec``); each package file
becomes the record py-rattler's installer takes (``RepoDataRecord.from_package_archive``), so the
install, the journal, the record and the no-op state are those of any other conda stage. A
remote file is downloaded once here to read its metadata and check it; the installer then
fetches it into the package cache against the sha256 read from that copy. A ``#md5`` or
``#sha256`` fragment that does not match the file stops the run before anything is changed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from pmpm import paths
from pmpm.conda.engine import run_coroutine
from pmpm.errors import PmpmError, located
from pmpm.fsutil import file_digest

if TYPE_CHECKING:
    from rattler import RepoDataRecord

#: the fragment's length says which digest it is, as conda and py-rattler read it
_DIGEST_BY_LENGTH = {32: "md5", 64: "sha256"}


@dataclass(frozen=True)
class Entry:
    """One package line of the list: its URL (without the fragment), its digest, its line."""

    url: str
    digest: str | None
    where: str

    @property
    def file_name(self) -> str:
        return unquote(urlparse(self.url).path).rsplit("/", 1)[-1]

    @property
    def channel(self) -> str:
        """The channel URL: the package URL without its subdir and file name."""
        return self.url.rsplit("/", 2)[0] + "/"  # with the slash, as the solver gives it


def entries(path: Path) -> list[Entry]:
    """The list's packages, in order, each with the ``file:line`` it was written on."""
    from rattler.exceptions import ParseExplicitEnvironmentSpecError
    from rattler.explicit_environment import ExplicitEnvironmentSpec

    try:
        listed = [p.url for p in ExplicitEnvironmentSpec.from_path(path).packages]
    except ParseExplicitEnvironmentSpecError as exc:
        raise PmpmError(
            f"cannot read the explicit package list: {str(exc).splitlines()[0]}",
            where=str(path),
            hint="after `@EXPLICIT` every line must be the URL of a .conda or .tar.bz2 file",
        ) from None
    lines = {raw.strip(): number for number, raw in enumerate(path.read_text().splitlines(), start=1)}
    found = []
    for url in listed:
        bare, _, fragment = url.partition("#")
        digest = fragment.split(":", 1)[-1].lower() or None  # `#md5`, `#sha256:hex` or `#hex`
        found.append(Entry(bare, digest, located(path, lines.get(url))))
    return found


def records(path: Path, *, offline: bool) -> list[RepoDataRecord]:
    """The records of the list's package files, each checked against its digest."""
    listed = entries(path)
    with tempfile.TemporaryDirectory(prefix="explicit-", dir=_scratch()) as scratch:
        return run_coroutine(_records(listed, Path(scratch), offline), settle=False)


def _scratch() -> Path:
    """Where remote files are downloaded to read them (beside the package cache: same disk)."""
    root = paths.cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


async def _records(listed: list[Entry], scratch: Path, offline: bool) -> list[RepoDataRecord]:
    from rattler import Client, RepoDataRecord
    from rattler.package_streaming import download_to_path

    client = None
    found = []
    for index, entry in enumerate(listed):
        if entry.url.startswith("file://"):
            file = Path(unquote(urlparse(entry.url).path))
            if not file.is_file():
                raise PmpmError(
                    f"package file {entry.file_name} not found: {file}",
                    where=entry.where,
                    hint="the list names a file that is gone: restore it, or write the list again",
                )
        elif offline:
            raise PmpmError(
                f"package {entry.file_name} is remote ({entry.url}) and --offline forbids downloading it",
                where=entry.where,
                hint="run without --offline, or list local files (file://)",
            )
        else:
            file = scratch / f"{index}-{entry.file_name}"
            client = client or Client()
            try:
                await download_to_path(client, entry.url, file)
            except Exception as exc:  # py-rattler raises its own types for network errors
                raise PmpmError(
                    f"cannot download package {entry.file_name}: {str(exc).splitlines()[0]}",
                    where=entry.where,
                    hint="check the URL and your network",
                ) from None
        _check_digest(entry, file)
        try:
            record = await RepoDataRecord.from_package_archive(file)
        except Exception as exc:  # not a readable package file
            raise PmpmError(
                f"package {entry.file_name} is not a readable conda package: {str(exc).splitlines()[0]}",
                where=entry.where,
                hint="the file is damaged or not a .conda/.tar.bz2 package: download it again",
            ) from None
        record.url = entry.url
        record.channel = entry.channel
        record.md5 = file_digest(file, "md5").digest()  # as a channel index gives it
        found.append(record)
    return found


def _check_digest(entry: Entry, file: Path) -> None:
    if entry.digest is None:
        return
    kind = _DIGEST_BY_LENGTH.get(len(entry.digest))
    if kind is None:
        raise PmpmError(
            f"package {entry.file_name}: `#{entry.digest}` is neither an md5 nor a sha256",
            where=entry.where,
            hint="write the URL with `#` and the file's md5 (32 hex digits) or sha256 (64), or without `#`",
        )
    actual = file_digest(file, kind).hexdigest()
    if actual != entry.digest:
        raise PmpmError(
            f"{kind} mismatch for package {entry.file_name}: the list says {entry.digest}, "
            f"the file has {actual}",
            where=entry.where,
            hint="the file changed since the list was written: restore the original package, "
            "or write the list again (conda list --explicit --md5)",
        )
