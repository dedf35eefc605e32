"""The record: exactly what an environment holds, written at the end of every successful run.

``pmpm conda_install`` (and ``system_install``) call :func:`write_record` once PREFIX is complete
and before the no-op state is saved, so a run that fails never writes one and a later no-op run
finds the record of the run that made the prefix. The record lives in
``layout.meta_dir / "record.json"`` (``PREFIX/conda-meta/pmpm/record.json`` for a plain prefix)
and holds: the env file and its hash, every conda package (name, version, build, channel, url,
sha256), every compiled package (recipe text and hash, resolved source, target, exact flags,
compiler and MPI identity, build key, every file with its sha256), Python packages installed by
pip, any other file pmpm found in the prefix, the host, and pmpm's version. The format is
documented in ``docs/record.md`` and ``docs/record.schema.json``.

The **environment id** is a hash of content only, so the same environment built twice, here or
on another machine, has the same id: conda packages by their archive sha256, compiled packages by
the inputs that define their bytes (recipe, source identity, flags, compilers, MPI, target,
options) and the hashes of their files, pip packages by name and version, and the activation
variables. It leaves out what differs between identical builds: timestamps, the host
description, pmpm's version, URLs and paths outside the environment; the environment's own
location is replaced by a token (``${prefix}``) wherever it appears. Files that embed the prefix
in binary form (an ELF ``RUNPATH``) are a function of the build inputs *and* of the location --
their section offsets move with the prefix's length -- so they enter the id by path only; their
hashes are still in the record and ``pmpm verify`` checks them.

This module is imported by ``pmpm.environment_id()`` from inside experiments: it imports nothing
heavy at module level (no py-rattler, no archspec).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from pmpm.errors import PmpmError
from pmpm.fsutil import atomic_write_text

FORMAT = 1
#: how the environment id is computed; a change of scheme changes every id, so it is versioned
ID_FORMAT = 1
RECORD_NAME = "record.json"
#: older records of the same environment, by id: ``require()`` explains a mismatch against them
HISTORY_DIR = "records"
HISTORY_KEEP = 20

Say = Callable[[str], None]


# --------------------------------------------------------------------------- the model


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
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


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
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompiledPackage:
        values = {k: data.get(k) for k in cls.__dataclass_fields__}
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
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


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
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


@dataclass
class EnvFile:
    path: str
    sha256: str  # of the bytes as read
    text: str
    normalized: Any  # the parsed YAML (comments and layout gone), or None when it does not parse
    normalized_sha256: str | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvFile:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


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


# --------------------------------------------------------------------------- where it lives


def _layout(prefix: Path):
    from pmpm.layout import find

    return find(Path(prefix))


def record_path(layout) -> Path:
    return layout.meta_dir / RECORD_NAME


def stacks(layout) -> dict[str, Path]:
    """The prefixes of one environment by role: one ``prefix``, or ``compile`` and ``conda``."""
    if layout.kind != "system":
        return {"prefix": Path(layout.root)}
    found = {"compile": Path(layout.compile)}
    if layout.conda is not None and Path(layout.conda) != Path(layout.compile):
        found["conda"] = Path(layout.conda)
    return found


def environment_id(prefix: Path) -> str | None:
    """The environment id of PREFIX's record, or None when there is none (cheap: one small read)."""
    try:
        path = record_path(_layout(prefix))
        with path.open("rb") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    value = data.get("environment_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def read(location: Path) -> Record:
    """The record of a prefix (or system_install root), or a record file given directly."""
    location = Path(location).expanduser()
    if location.is_file():
        path = location
    elif location.is_dir():
        path = record_path(_layout(location))
    else:
        raise PmpmError(f"{location} does not exist", hint="give an environment prefix or a record.json file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PmpmError(
            f"{location} has no pmpm record ({path} is missing)",
            hint="records are written by pmpm conda_install at the end of a successful run; "
            "run it on this prefix (a prefix made by another tool has no record)",
        ) from None
    except OSError as exc:
        raise PmpmError(f"cannot read the record: {exc.strerror}", where=str(path)) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PmpmError(
            f"the record is not valid JSON ({exc})",
            where=str(path),
            hint="run pmpm conda_install again to rewrite it",
        ) from None
    return Record.from_dict(data, where=str(path))


def history(layout) -> dict[str, Path]:
    """Earlier records of this environment by id (newest kept), for explaining a mismatch."""
    folder = layout.meta_dir / HISTORY_DIR
    try:
        return {p.stem: p for p in folder.glob("*.json")}
    except OSError:
        return {}


# --------------------------------------------------------------------------- building it


def _meta_records(stack: Path) -> list[dict[str, Any]]:
    """The conda-meta records of a stack as JSON (no py-rattler needed to read them)."""
    records = []
    for path in sorted((stack / "conda-meta").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PmpmError(
                f"unreadable package record: {exc}",
                where=str(path),
                hint="remove the file and run pmpm again to reinstall that package",
            ) from None
        if isinstance(data, dict) and "name" in data:
            records.append(data)
    return records


def _is_compiled(data: dict[str, Any]) -> bool:
    from pmpm.conda import BUILD_PREFIX

    return str(data.get("build", "")).startswith(BUILD_PREFIX)


def installed_files(data: dict[str, Any]) -> list[FileEntry]:
    """A conda-meta record's files with the hash they have once installed (after relocation)."""
    entries = []
    paths = (data.get("paths_data") or {}).get("paths") or []
    for item in paths:
        kind = item.get("path_type", "hardlink")
        if kind == "directory":
            continue
        entries.append(
            FileEntry(
                path=item["_path"],
                sha256=None if kind == "softlink" else item.get("sha256_in_prefix") or item.get("sha256"),
                size=item.get("size_in_bytes"),
                prefix=item.get("file_mode") if item.get("prefix_placeholder") else None,
            )
        )
    if not paths:  # a record without paths_data: names only
        entries = [FileEntry(path=p) for p in data.get("files") or []]
    return entries


def build_details(step, book) -> dict[str, Any]:
    """What the record needs beyond the build key's inputs, kept beside them at build time:
    the recipe as written and rendered, and the source as resolved (for ``pmpm export``)."""
    source = step.source
    try:
        text = book.find(step.name).text
    except PmpmError:  # a plugin recipe, or one gone since planning: the record says so
        text = None
    where: dict[str, Any] = {
        "url": list(source.urls) or None,
        "sha256": source.sha256,
        "git": source.git,
        "ref": source.ref,
        "pypi": source.pypi,
        "path": str(source.path) if source.path else None,
        "fetched_from": getattr(step.fetched, "origin", None),
    }
    return {
        "recipe_text": text,
        "recipe_origin": step.recipe.origin,
        "rendered": step.recipe.canonical(),
        "source": {"kind": source.kind, **{k: v for k, v in where.items() if v is not None}},
    }


def _compiled(data: dict[str, Any], stack_name: str, stack: Path) -> CompiledPackage:
    from pmpm.journal import pmpm_dir

    name = data["name"]
    try:
        inputs = json.loads((pmpm_dir(stack) / "builds" / f"{name}.json").read_text())
    except (OSError, ValueError):
        inputs = {}
    details = inputs.get("record") or {}
    rendered = details.get("rendered")
    recipe = {
        "origin": details.get("recipe_origin"),
        "text": details.get("recipe_text"),
        "rendered": rendered,
        "sha256": inputs.get("recipe"),
    }
    source = {**(details.get("source") or {}), "identity": inputs.get("source")}
    from pmpm.plan import digest

    key = digest({k: v for k, v in inputs.items() if k != "record"}) if inputs else None
    return CompiledPackage(
        name=name,
        version=str(data.get("version")),
        build=str(data.get("build")),
        build_key=key,
        stack=stack_name,
        package_sha256=data.get("sha256"),
        recipe=recipe,
        source=source,
        target=inputs.get("target"),
        flags=inputs.get("flags") or {},
        compilers=inputs.get("compilers") or {},
        mpi=inputs.get("mpi"),
        python=inputs.get("python"),
        options=inputs.get("options") or {},
        requires={"recipes": inputs.get("recipes") or {}, "conda": inputs.get("conda") or {}},
        files=installed_files(data),
    )


def _conda(data: dict[str, Any], stack_name: str) -> CondaPackage:
    return CondaPackage(
        name=data["name"],
        version=str(data.get("version")),
        build=str(data.get("build")),
        build_number=int(data.get("build_number") or 0),
        subdir=str(data.get("subdir") or ""),
        channel=data.get("channel"),
        url=data.get("url"),
        sha256=data.get("sha256"),
        md5=data.get("md5"),
        stack=stack_name,
    )


#: never owned by a package and never an environment's content: bytecode Python writes at run time
_SKIP_DIRS = frozenset({"__pycache__"})


def _is_ignored(rel: str) -> bool:
    parts = rel.split("/")
    return parts[0] == "conda-meta" or bool(_SKIP_DIRS & set(parts)) or rel.endswith(".pyc")


def walk_files(stack: Path) -> dict[str, os.DirEntry | None]:
    """Every file and symlink under ``stack`` (relative POSIX path), pmpm's own files left out."""
    found: dict[str, Any] = {}
    pending = [("", stack)]
    while pending:
        rel_dir, folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            rel = f"{rel_dir}{entry.name}"
            if rel_dir == "" and entry.name in ("conda-meta", ".pmpm"):
                continue
            if entry.name in _SKIP_DIRS or entry.name.endswith(".pyc"):
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append((rel + "/", Path(entry.path)))
            else:
                found[rel] = entry
    return found


#: how :attr:`FileEntry.sha256_neutral` writes the stack's own location
NEUTRAL_PREFIX = "${prefix}"


def file_entry(stack: Path, rel: str, stack_name: str | None = None) -> FileEntry:
    """A file no package owns, as it is now. A text file naming the stack's location also gets
    a location-neutral hash: relocation tools (conda-pack) rewrite the location in such files."""
    path = stack / rel
    if path.is_symlink():
        return FileEntry(path=rel, link=os.readlink(path), stack=stack_name)
    data = path.read_bytes()
    entry = FileEntry(path=rel, sha256=hashlib.sha256(data).hexdigest(), size=len(data), stack=stack_name)
    here = os.fsencode(stack)
    if here in data and _is_text(data):
        entry.prefix = "text"
        entry.sha256_neutral = hashlib.sha256(data.replace(here, NEUTRAL_PREFIX.encode())).hexdigest()
    return entry


def _is_text(data: bytes) -> bool:
    """conda-pack's test for an unmanaged file it may rewrite: valid UTF-8."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _pip_packages(stack: Path, stack_name: str, unowned: list[str]) -> list[PipPackage]:
    found = []
    for rel in unowned:
        if not rel.endswith(".dist-info/METADATA"):
            continue
        meta = (stack / rel).read_text(encoding="utf-8", errors="replace")
        name = re.search(r"^Name:\s*(.+)$", meta, re.M)
        version = re.search(r"^Version:\s*(.+)$", meta, re.M)
        installer = stack / rel.replace("/METADATA", "/INSTALLER")
        found.append(
            PipPackage(
                name=name.group(1).strip() if name else rel.split("/")[-2],
                version=version.group(1).strip() if version else "?",
                installer=installer.read_text().strip() if installer.is_file() else None,
                dist_info=rel.rsplit("/", 1)[0],
                stack=stack_name,
            )
        )
    return found


def _cpu_fingerprint() -> str:
    """What archspec reads to name the CPU (model, flags), and the kernel: a change of either
    means asking archspec again."""
    try:
        with open("/proc/cpuinfo", "rb") as handle:
            first = handle.read(1 << 16).split(b"\n\n", 1)[0]
    except OSError:
        first = b""
    return hashlib.sha256(first + os.uname().release.encode()).hexdigest()


def _host_target() -> str | None:
    """archspec's name for this CPU, remembered in pmpm's cache per CPU: importing archspec and
    detecting costs more than the rest of the record, on every install."""
    try:
        from pmpm.conda import cache_dir

        memo = cache_dir() / "host-target.json"
    except ImportError:  # an experiment's environment without py-rattler: just ask
        memo = None
    fingerprint = _cpu_fingerprint()
    if memo is not None:
        try:
            known = json.loads(memo.read_text())
            if known.get("cpu") == fingerprint:
                return known.get("target")
        except (OSError, ValueError, AttributeError):
            pass
    try:
        import archspec.cpu

        target = archspec.cpu.host().name
    except Exception:  # archspec on an unknown CPU: the record is still useful without it
        return None
    if memo is not None:
        with contextlib.suppress(OSError):
            atomic_write_text(memo, json.dumps({"cpu": fingerprint, "target": target}))
    return target


def describe_host() -> Host:
    import platform

    target = _host_target()
    os_name = None
    try:
        text = Path("/etc/os-release").read_text()
        match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
        os_name = match.group(1) if match else None
    except OSError:
        pass
    try:
        glibc = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError, AttributeError):
        glibc = None
    try:  # an experiment's environment may have pmpm without py-rattler (require/provenance)
        from pmpm.conda import host_subdir

        subdir = host_subdir()
    except ImportError:
        subdir = None
    return Host(
        target=target,
        os=os_name or platform.platform(),
        kernel=f"{platform.system()} {platform.release()}",
        machine=platform.machine(),
        glibc=glibc,
        subdir=subdir,
    )


def _env_file(path: Path | None) -> EnvFile | None:
    if path is None:
        return None
    import yaml

    raw = Path(path).read_bytes()
    text = raw.decode("utf-8", errors="replace")
    try:
        normalized = yaml.safe_load(text)
        canonical = json.dumps(normalized, sort_keys=True, separators=(",", ":"), default=str)
        normalized_sha = hashlib.sha256(canonical.encode()).hexdigest()
    except yaml.YAMLError:
        normalized, normalized_sha = None, None
    return EnvFile(
        path=str(Path(path).absolute()),
        sha256=hashlib.sha256(raw).hexdigest(),
        text=text,
        normalized=normalized,
        normalized_sha256=normalized_sha,
    )


def build(layout, env_file: Path | None = None) -> Record:
    """Read what the environment holds now and describe it; nothing is written."""
    from datetime import datetime, timezone

    from pmpm import __version__, variables

    conda_packages: list[CondaPackage] = []
    compiled: list[CompiledPackage] = []
    pip: list[PipPackage] = []
    other: list[FileEntry] = []
    env_vars: dict[str, dict[str, str]] = {}
    for stack_name, stack in stacks(layout).items():
        owned: set[str] = set()
        for data in _meta_records(stack):
            owned.update(data.get("files") or [])
            if _is_compiled(data):
                compiled.append(_compiled(data, stack_name, stack))
            else:
                conda_packages.append(_conda(data, stack_name))
        unowned = sorted(rel for rel in walk_files(stack) if rel not in owned)
        other += [file_entry(stack, rel, stack_name) for rel in unowned]
        pip += _pip_packages(stack, stack_name, unowned)
        found = variables.read(stack)
        if found:
            env_vars[stack_name] = found
    compiled.sort(key=lambda p: p.name)
    conda_packages.sort(key=lambda p: p.name)
    record = Record(
        environment_id="",
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        pmpm_version=__version__,
        layout={
            "kind": layout.kind,
            "root": str(layout.root),
            **{name: str(path) for name, path in stacks(layout).items()},
        },
        host=describe_host(),
        env_file=_env_file(env_file),
        conda_packages=conda_packages,
        compiled_packages=compiled,
        pip_packages=pip,
        other_files=other,
        variables=env_vars,
    )
    record.environment_id = compute_id(record, stacks(layout))
    return record


def write_record(layout, env_file: Path | None, say: Say | None = None) -> Record:
    """Describe the environment and store the record atomically; the previous one goes to history.

    Called by the install commands at the end of a successful run, before the no-op state.
    """
    record = build(layout, env_file)
    path = record_path(layout)
    try:  # unchanged but for the time (a re-run that only re-checked): keep the file as it is
        previous = Record.from_dict(json.loads(path.read_text(encoding="utf-8")), where=str(path))
        if previous.to_json() == replace(record, created=previous.created).to_json():
            return previous
    except (OSError, ValueError, PmpmError):
        pass
    old = environment_id(layout.root)
    if old and old != record.environment_id:
        try:
            folder = path.parent / HISTORY_DIR
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(path, folder / f"{old}.json")
            kept = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
            for stale in kept[:-HISTORY_KEEP]:
                stale.unlink(missing_ok=True)
        except OSError:
            pass
    atomic_write_text(path, record.to_json())
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)  # readable like the rest of the prefix: experiments read it
    if say is not None:
        say(f"environment id: {record.environment_id}")
    return record


# --------------------------------------------------------------------------- the id


def _tokens(locations: dict[str, Path]) -> list[tuple[str, str]]:
    pairs = [(str(path), "${" + name + "}") for name, path in locations.items()]
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def _neutral(value: Any, tokens: list[tuple[str, str]]) -> Any:
    """``value`` with the environment's own location replaced by tokens."""
    if isinstance(value, str):
        for path, token in tokens:
            value = value.replace(path, token)
        return value
    if isinstance(value, dict):
        return {k: _neutral(v, tokens) for k, v in value.items()}
    if isinstance(value, list):
        return [_neutral(v, tokens) for v in value]
    return value


_HOST_PATH = re.compile(r"\s*(?<!\S)/\S+")


def _compiler_identity(text: str) -> str:
    """``gcc 12.2.0 /usr/bin/gcc-12 (gcc (Debian 12.2.0-14) 12.2.0)`` -> the same without the
    path: where a compiler is installed is the host's business, its version line is the identity."""
    return _HOST_PATH.sub("", text)


def _file_identity(entry: FileEntry, stack: Path | None, tokens: list[tuple[str, str]]) -> str | None:
    if entry.link is not None:
        return "link:" + _neutral(entry.link, tokens)
    if entry.prefix == "binary":
        return "binary-with-prefix"
    if entry.prefix == "text" and stack is not None:
        try:
            data = (stack / entry.path).read_bytes()
        except OSError:
            return entry.sha256
        for path, token in tokens:
            data = data.replace(os.fsencode(path), token.encode())
        return hashlib.sha256(data).hexdigest()
    return entry.sha256


def identity_document(record: Record, locations: dict[str, Path] | None = None) -> dict[str, Any]:
    """Everything the environment id hashes, location-neutral (see the module docstring)."""
    if locations is None:
        locations = {k: Path(v) for k, v in record.layout.items() if k not in ("kind", "root")}
    tokens = _tokens(locations)
    compiled = []
    for package in record.compiled_packages:
        rendered = package.recipe.get("rendered")
        recipe_digest = None
        if rendered:
            data = json.loads(rendered)
            data.pop("source", None)  # where the source came from; its identity is below
            recipe_digest = hashlib.sha256(
                json.dumps(_neutral(data, tokens), sort_keys=True).encode()
            ).hexdigest()
        stack = locations.get(package.stack)
        compiled.append(
            {
                "name": package.name,
                "version": package.version,
                "recipe": recipe_digest or package.recipe.get("sha256"),
                "source": package.source.get("identity"),
                "target": package.target,
                "flags": _neutral(package.flags, tokens),
                "compilers": {k: _compiler_identity(v) for k, v in sorted(package.compilers.items())},
                "mpi": _neutral(package.mpi, tokens),
                "python": _neutral(package.python, tokens),
                "options": package.options,
                "requires": {
                    "recipes": sorted(package.requires.get("recipes") or {}),
                    "conda": package.requires.get("conda") or {},
                },
                "files": sorted([f.path, _file_identity(f, stack, tokens)] for f in package.files),
            }
        )
    return {
        "id_format": record.id_format,
        "conda": sorted(
            [p.name, p.version, p.build, p.subdir, p.sha256 or p.md5] for p in record.conda_packages
        ),
        "compiled": compiled,
        "pip": sorted([p.name.lower(), p.version] for p in record.pip_packages),
        "variables": _neutral(record.variables, tokens),
    }


def compute_id(record: Record, locations: dict[str, Path] | None = None) -> str:
    document = identity_document(record, locations)
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------- pmpm record


def show(prefix: Path, as_json: bool, say: Say) -> int:
    """``pmpm record PREFIX``: the record as JSON, or a summary a person reads."""
    record = read(prefix)
    if as_json:
        say(record.to_json().rstrip("\n"))
        return 0
    say(f"environment id: {record.environment_id}")
    say(f"written: {record.created} by pmpm {record.pmpm_version}")
    where = ", ".join(f"{k} {v}" for k, v in record.layout.items() if k not in ("kind", "root"))
    say(f"layout: {record.layout.get('kind')} ({where})")
    host = record.host
    say(f"host: target {host.target}, {host.os}, {host.kernel} {host.machine}, {host.glibc}")
    if record.env_file is not None:
        say(f"env file: {record.env_file.path} (sha256 {record.env_file.sha256[:16]}...)")
    say(f"conda packages ({len(record.conda_packages)}):")
    for p in record.conda_packages:
        say(f"  {p.name} {p.version} {p.build}  {p.channel or ''}  sha256:{(p.sha256 or '?')[:16]}")
    say(f"compiled packages ({len(record.compiled_packages)}):")
    for c in record.compiled_packages:
        say(f"  {c.name} {c.version} {c.build}  target {c.target}  source {c.source.get('identity')}")
        say(f"    cflags: {c.flags.get('cflags', '')}")
        cc = c.compilers.get("cc")
        if cc:
            say(f"    cc: {cc}")
        if c.mpi:
            say(f"    mpi: {c.mpi}")
        say(f"    {len(c.files)} files")
    if record.pip_packages:
        say(f"pip packages ({len(record.pip_packages)}):")
        for p in record.pip_packages:
            say(f"  {p.name} {p.version} (installer: {p.installer})")
    return 0
