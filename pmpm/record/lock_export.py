"""``pmpm export PREFIX -o env.lock``: write the one file that carries an environment.

The format is described in :mod:`pmpm.record.lock`, which reads it back and rebuilds from it.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rattler import LockChannel, LockFile, LockPlatform

from pmpm.conda.engine import host_subdir, is_compiled
from pmpm.env import inventory
from pmpm.errors import PmpmError
from pmpm.fsutil import atomic_write_text
from pmpm.record import api as records
from pmpm.record.api import identity_document
from pmpm.record.read import TARGET_STACK
from pmpm.spec.matchspec import for_solver

if TYPE_CHECKING:
    from pmpm.env.layout import Layout
    from pmpm.record.model import CompiledPackage, Record

Say = Callable[[str], None]
FORMAT = 1
ENVIRONMENT = "default"
#: between the rattler lock and the ``pmpm:`` section
SEPARATOR = "\n# --- pmpm: compiled packages, their recipes and sources (ignored by rattler and pixi)\n"


def _conda_part(layout: Layout, record: Record) -> tuple[str, str]:
    """The rattler lock text of the conda packages, and the platform it is for."""
    subdir = record.host.subdir or host_subdir()
    stack = layout.conda if layout.conda is not None else layout.compile
    rattler_records = [r for r in inventory.prefix_records(stack) if not is_compiled(r)]
    platform = LockPlatform(subdir)
    lock = LockFile([platform])
    channels: list[str] = []
    for package in record.conda_packages:
        if package.channel and package.channel not in channels:
            channels.append(package.channel)
    lock.set_channels(ENVIRONMENT, [LockChannel(c) for c in channels])
    for item in rattler_records:
        lock.add_conda_package(ENVIRONMENT, platform, item)
    with tempfile.TemporaryDirectory(prefix="pmpm-lock-") as tmp:
        path = Path(tmp) / "conda.lock"
        lock.to_path(path)
        return path.read_text(encoding="utf-8"), subdir


def _request(package: CompiledPackage) -> dict[str, Any]:
    """How the rebuild asks for one compiled package: its locked source, version, target, options."""
    source = package.source
    kind = source.get("kind")
    request: dict[str, Any] = {"version": package.version, **package.options}
    if kind == "path":
        request["path"] = source.get("path")
    elif kind == "git":
        request["git"] = source.get("git")
        request["ref"] = str(source.get("identity", "")).removeprefix("git:")
    elif kind == "url":
        request["url"] = source.get("fetched_from") or (source.get("url") or [None])[0]
        request["sha256"] = str(source.get("identity", "")).removeprefix("sha256:")
    return request


def lock_data(record: Record) -> dict[str, Any]:
    documents = identity_document(record)["compiled"]  # in the record's order
    normalized = record.env_file.normalized if record.env_file else None
    settings = {}
    requested: list[str] = []
    if isinstance(normalized, dict):
        section = normalized.get("_pmpm") or {}
        if isinstance(section, dict):
            settings = {k: section[k] for k in ("mpi", "compilers", "tests") if k in section}
        written = [d for d in normalized.get("dependencies") or [] if isinstance(d, str)]
        requested = [str(match) for match in for_solver(written)]  # as the solve read them
    compiled = []
    for package, document in zip(record.compiled_packages, documents, strict=True):
        if not package.recipe.get("rendered"):
            raise PmpmError(
                f"the record of compiled package {package.name} lacks its recipe (built by an older pmpm)",
                hint="run pmpm conda_install --update on the prefix to rebuild it, then export again",
            )
        compiled.append(
            {
                "name": package.name,
                "version": package.version,
                "target": package.target,
                "recipe": {"text": package.recipe.get("text"), "origin": package.recipe.get("origin")},
                "source": package.source,
                "request": _request(package),
                "flags": document["flags"],
                "compilers": document["compilers"],
                "requires": package.requires,
                # with a stack per target: which one (each name is then locked once per target)
                **({"stack": package.stack} if package.stack.startswith(TARGET_STACK) else {}),
            }
        )
    targets = [k.removeprefix(TARGET_STACK) for k in record.layout if k.startswith(TARGET_STACK)]
    return {
        "format": FORMAT,
        "environment_id": record.environment_id,
        "pmpm_version": record.pmpm_version,
        "host": {"target": record.host.target, "os": record.host.os, "glibc": record.host.glibc},
        "requested": requested,
        "settings": settings,
        "variables": record.variables.get("prefix") or record.variables.get("conda") or {},
        "env_file": record.env_file.text if record.env_file else None,
        "pip": [{"name": p.name, "version": p.version} for p in record.pip_packages],
        "compiled": compiled,
        **({"targets": targets} if targets else {}),
    }


def export(prefix: Path, out: Path, say: Say) -> int:
    """``pmpm export PREFIX -o FILE``."""
    layout = records.layout_of(prefix)
    record = records.read(layout.root)
    conda_text, subdir = _conda_part(layout, record)
    data = lock_data(record)
    data["subdir"] = subdir
    data["conda_sha256"] = hashlib.sha256(conda_text.encode()).hexdigest()
    text = conda_text + SEPARATOR + yaml.safe_dump({"pmpm": data}, sort_keys=False, width=1000)
    atomic_write_text(Path(out), text)
    say(
        f"wrote {out}: {len(record.conda_packages)} conda packages, {len(data['compiled'])} compiled "
        f"(environment id {record.environment_id})"
    )
    if record.pip_packages:
        say("note: pip packages are listed but not locked: " + ", ".join(p.name for p in record.pip_packages))
    return 0
