"""Describing an environment as it is now, and storing the record at the end of a run.

``pmpm conda_install`` (and ``system_install``) call :func:`write_record` once PREFIX is complete
and before the no-op state is saved (see :mod:`pmpm.record.api`). The prefix is read through
:mod:`pmpm.env.inventory`; a compiled package's inputs come from what the compile stage stored beside
its build key (:func:`pmpm.paths.build_inputs_file`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pmpm import __version__, paths
from pmpm.conda import variables
from pmpm.env.inventory import file_entry, installed_files, meta_records, pip_packages, walk_files
from pmpm.env.layout import Layout
from pmpm.errors import PmpmError
from pmpm.fsutil import atomic_write_text
from pmpm.host.target import host_target_name
from pmpm.record.identity import compute_id
from pmpm.record.model import CompiledPackage, CondaPackage, EnvFile, FileEntry, Host, PipPackage, Record
from pmpm.record.read import HISTORY_DIR, HISTORY_KEEP, environment_id, record_path, stacks

Say = Callable[[str], None]


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


def _is_compiled(data: dict[str, Any]) -> bool:
    from pmpm.conda.engine import BUILD_PREFIX  # asyncio and more: not for pmpm.environment_id()

    return str(data.get("build", "")).startswith(BUILD_PREFIX)


def _compiled(data: dict[str, Any], stack_name: str, stack: Path) -> CompiledPackage:
    # the build stage's inputs type: loaded only to record a stack with compiled packages
    from pmpm.build.inputs import BuildInputs, digest

    name = data["name"]
    where = paths.build_inputs_file(stack, name)
    try:
        stored = json.loads(where.read_text())
    except (OSError, ValueError):
        stored = {}
    details = stored.get("record") or {}
    # the inputs as stored, read back (a format this pmpm does not know is an error here)
    inputs = BuildInputs.from_dict(stored, where=str(where)).as_dict() if stored else {}
    rendered = details.get("rendered")
    recipe = {
        "origin": details.get("recipe_origin"),
        "text": details.get("recipe_text"),
        "rendered": rendered,
        "sha256": inputs.get("recipe"),
    }
    source = {**(details.get("source") or {}), "identity": inputs.get("source")}
    # the key the package was built with: the digest of its inputs as they were written
    key = digest({k: v for k, v in stored.items() if k != "record"}) if stored else None
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
        inputs={k: v for k, v in stored.items() if k != "record"} or None,  # as stored, with its format
        log=_log(stack, name, str(data.get("version")), str(data.get("build"))),
    )


def _log(stack: Path, name: str, version: str, build: str) -> str | None:
    """The kept build log of a compiled package, relative to its stack (None: there is none)."""
    log = paths.installed_log(stack, name, version, build)
    return log.relative_to(stack).as_posix() if log.is_file() else None


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


def describe_host() -> Host:
    target = host_target_name()
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
        from pmpm.conda.engine import host_subdir

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


def _env_file(path: Path | None, text: str | None = None) -> EnvFile | None:
    """The env file as the record keeps it: read from ``path``, or given as ``text`` (a lock's
    rebuild: the env file its lock carries; ``path`` then names the lock)."""
    if path is None:
        return None
    import yaml  # 80 ms: not for pmpm.environment_id(), which only reads the record

    raw = Path(path).read_bytes() if text is None else text.encode()
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


def build(layout: Layout, env_file: Path | None = None, env_text: str | None = None) -> Record:
    """Read what the environment holds now and describe it; nothing is written. ``env_text``:
    the env file's text when it is not read from ``env_file`` (see :func:`_env_file`)."""
    conda_packages: list[CondaPackage] = []
    compiled: list[CompiledPackage] = []
    pip: list[PipPackage] = []
    other: list[FileEntry] = []
    env_vars: dict[str, dict[str, str]] = {}
    for stack_name, stack in stacks(layout).items():
        owned: set[str] = set()
        for data in meta_records(stack):
            owned.update(data.get("files") or [])
            if _is_compiled(data):
                compiled.append(_compiled(data, stack_name, stack))
            else:
                conda_packages.append(_conda(data, stack_name))
        unowned = sorted(rel for rel in walk_files(stack) if rel not in owned)
        other += [file_entry(stack, rel, stack_name) for rel in unowned]
        pip += pip_packages(stack, stack_name, unowned)
        found = variables.read(stack)
        if found:
            env_vars[stack_name] = found
    compiled.sort(key=lambda p: (p.name, p.stack))  # with targets: each name once per target stack
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
        env_file=_env_file(env_file, env_text),
        conda_packages=conda_packages,
        compiled_packages=compiled,
        pip_packages=pip,
        other_files=other,
        variables=env_vars,
    )
    record.environment_id = compute_id(record, stacks(layout))
    return record


def write_record(
    layout: Layout, env_file: Path | None, say: Say | None = None, *, env_text: str | None = None
) -> Record:
    """Describe the environment and store the record atomically; the previous one goes to history.

    Called by the install commands at the end of a successful run, before the no-op state.
    """
    record = build(layout, env_file, env_text)
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
