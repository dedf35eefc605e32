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

The record's jobs live in modules of their own, and their public names are importable from here:
the model (:mod:`pmpm.record.model`), where it lives and reading it (:mod:`pmpm.record.read`),
describing a prefix and writing it (:mod:`pmpm.record.build`, reading the prefix through
:mod:`pmpm.env.inventory`), and the id (:mod:`pmpm.record.identity`). This module is imported by
``pmpm.environment_id()`` from inside experiments: it imports nothing heavy at module level (no
py-rattler, no archspec).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pmpm.env.inventory import NEUTRAL_PREFIX, file_entry, installed_files, walk_files
from pmpm.record.build import build, build_details, describe_host, write_record
from pmpm.record.identity import compute_id, identity_document, location_tokens, neutral
from pmpm.record.model import (
    FORMAT,
    ID_FORMAT,
    CompiledPackage,
    CondaPackage,
    EnvFile,
    FileEntry,
    Host,
    PipPackage,
    Record,
)
from pmpm.record.read import (
    HISTORY_DIR,
    HISTORY_KEEP,
    RECORD_NAME,
    environment_id,
    history,
    layout_of,
    read,
    record_path,
    stacks,
)

__all__ = [
    "FORMAT",
    "HISTORY_DIR",
    "HISTORY_KEEP",
    "ID_FORMAT",
    "NEUTRAL_PREFIX",
    "RECORD_NAME",
    "CompiledPackage",
    "CondaPackage",
    "EnvFile",
    "FileEntry",
    "Host",
    "PipPackage",
    "Record",
    "build",
    "build_details",
    "compute_id",
    "describe_host",
    "environment_id",
    "file_entry",
    "history",
    "identity_document",
    "installed_files",
    "layout_of",
    "location_tokens",
    "neutral",
    "read",
    "record_path",
    "show",
    "stacks",
    "walk_files",
    "write_record",
]

Say = Callable[[str], None]


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
        if c.log:
            say(f"    build log: {Path(record.layout.get(c.stack, record.layout['root'])) / c.log}")
    if record.pip_packages:
        say(f"pip packages ({len(record.pip_packages)}):")
        for pip in record.pip_packages:
            say(f"  {pip.name} {pip.version} (installer: {pip.installer})")
    return 0
