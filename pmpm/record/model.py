"""The record's data model: what an environment holds, as written to ``record.json``.

Plain dataclasses with their JSON reading (``from_dict``); the format is documented in
``docs/record.md`` and ``docs/record.schema.json``. See :mod:`pmpm.record.api` for what the record is.
Imports nothing heavy: ``pmpm.environment_id()`` reads records from inside experiments.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pmpm.errors import PmpmError

FORMAT = 1
#: how the environment id is computed; a change of scheme changes every id, so it is versioned
ID_FORMAT = 1


def _fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The values of a dataclass's fields in a JSON object (None when missing): records written
    by an older pmpm lack the newer optional fields."""
    return {k: data.get(k) for k in cls.__dataclass_fields__}  # type: ignore[attr-defined]


@dataclass
class FileEntry:
    """One file (or symlink) as installed; ``prefix`` is "text"/"binary" when it embeds the prefix."""

    path: str
    sha256: str | None = None  # None for a symlink
    size: int | None = None
    link: str | None = None  # a symlink's target
    prefix: str | None = None
    stack: str | None = None  # only for files no package owns: which stack they are in
    #: a text file no package owns that names its stack: its sha256 with that location written
    #: as ``${prefix}``, so that verify can check it where the environment was moved to
    sha256_neutral: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        return cls(**_fields(cls, data))


@dataclass
class CondaPackage:
    name: str
    version: str
    build: str
    build_number: int
    subdir: str
    channel: str | None
    url: str | None
    sha256: str | None
    md5: str | None
    stack: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CondaPackage:
        return cls(**_fields(cls, data))


@dataclass
class CompiledPackage:
    """A package pmpm built: what went in (the build key's inputs) and what came out (files)."""

    name: str
    version: str
    build: str
    build_key: str | None
    stack: str
    package_sha256: str | None
    recipe: dict[str, Any]  # origin, text (the recipe file), rendered (canonical JSON), sha256
    source: dict[str, Any]  # kind, where (url / git + ref / path / pypi), identity
    target: str | None
    flags: dict[str, str]
    compilers: dict[str, str]
    mpi: str | None
    python: str | None
    options: dict[str, Any]
    requires: dict[str, Any]  # {"recipes": {name: key}, "conda": {name: version-build}}
    files: list[FileEntry]
    #: the build inputs as stored beside the package (pmpm.build.inputs.BuildInputs, with its
    #: ``format``); None in records of an older pmpm. The fields above are read from them.
    inputs: dict[str, Any] | None = None
    #: the log of the build that made the package, kept in the stack (relative to it:
    #: ``conda-meta/pmpm/logs/NAME-VERSION-BUILD.log``); None when there is none (older pmpm)
    log: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompiledPackage:
        values = _fields(cls, data)
        values["files"] = [FileEntry.from_dict(f) for f in data.get("files") or []]
        for key in ("recipe", "source", "flags", "compilers", "options", "requires"):
            values[key] = values[key] or {}
        return cls(**values)


@dataclass
class PipPackage:
    """A Python distribution no conda package owns (the env file's pip section, or a stray pip)."""

    name: str
    version: str
    installer: str | None
    dist_info: str
    stack: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipPackage:
        return cls(**_fields(cls, data))


@dataclass
class Host:
    """Where the record was written; informative only, never part of the environment id."""

    target: str | None
    os: str | None
    kernel: str | None
    machine: str | None
    glibc: str | None
    subdir: str | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Host:
        return cls(**_fields(cls, data))


@dataclass
class EnvFile:
    path: str
    sha256: str  # of the bytes as read
    text: str
    normalized: Any  # the parsed YAML (comments and layout gone), or None when it does not parse
    normalized_sha256: str | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvFile:
        return cls(**_fields(cls, data))


@dataclass
class Record:
    environment_id: str
    created: str
    pmpm_version: str
    layout: dict[str, Any]
    host: Host
    env_file: EnvFile | None
    conda_packages: list[CondaPackage] = field(default_factory=list)
    compiled_packages: list[CompiledPackage] = field(default_factory=list)
    pip_packages: list[PipPackage] = field(default_factory=list)
    other_files: list[FileEntry] = field(default_factory=list)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)  # stack -> env_vars
    id_format: int = ID_FORMAT
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(_drop_none(asdict(self)), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> Record:
        if not isinstance(data, dict) or "environment_id" not in data:
            raise PmpmError("this is not a pmpm record", where=where, hint="give a prefix or a record.json")
        if data.get("format") != FORMAT:
            raise PmpmError(
                f"record format {data.get('format')!r} is not the one this pmpm reads ({FORMAT})",
                where=where,
                hint="use the pmpm version that wrote it, or run pmpm conda_install again to rewrite it",
            )
        try:
            return cls(
                environment_id=str(data["environment_id"]),
                created=str(data.get("created", "")),
                pmpm_version=str(data.get("pmpm_version", "")),
                layout=dict(data.get("layout") or {}),
                host=Host.from_dict(data.get("host") or {}),
                env_file=EnvFile.from_dict(data["env_file"]) if data.get("env_file") else None,
                conda_packages=[CondaPackage.from_dict(p) for p in data.get("conda_packages") or []],
                compiled_packages=[CompiledPackage.from_dict(p) for p in data.get("compiled_packages") or []],
                pip_packages=[PipPackage.from_dict(p) for p in data.get("pip_packages") or []],
                other_files=[FileEntry.from_dict(f) for f in data.get("other_files") or []],
                variables=dict(data.get("variables") or {}),
                id_format=int(data.get("id_format", ID_FORMAT)),
            )
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise PmpmError(f"malformed record: {exc}", where=where) from None

    def packages(self) -> dict[str, str]:
        """name -> version-build of every package, conda or compiled (for messages and diffs)."""
        found = {p.name: f"{p.version}-{p.build}" for p in self.conda_packages}
        found.update({p.name: f"{p.version}-{p.build}" for p in self.compiled_packages})
        return found


def _drop_none(value: Any) -> Any:
    """Leave out empty optional fields of file entries: records of big envs stay readable."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if not (v is None and k in _OPTIONAL)}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


_OPTIONAL = frozenset({"link", "prefix", "stack", "size", "sha256", "sha256_neutral"})
