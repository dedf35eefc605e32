"""Solve and install conda packages with the embedded py-rattler engine.

Only this module talks to py-rattler's solver and installer, so its API churn between minor
versions (we pin one minor series) is absorbed in one place. Everything here is synchronous for
callers; py-rattler's coroutines run inside :func:`run_coroutine`.

py-rattler (over 100 ms to import) is imported in the functions that use it: this module is
also imported where nothing is solved or installed (``pmpm run``'s record, through
:mod:`pmpm.record.build`; an install journal's rollback).
"""

from __future__ import annotations

import asyncio
import atexit
import os
import re
import time
from collections.abc import Coroutine, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import unquote, urlparse

from pmpm import paths
from pmpm.conda.channels import ResolvedChannel
from pmpm.conda.padding import installer_error
from pmpm.env import inventory
from pmpm.env.diskspace import installer_failure
from pmpm.errors import PmpmError
from pmpm.fsutil import sha256_file
from pmpm.spec.matchspec import NoVersionMatches, expand, for_solver, pattern_names

if TYPE_CHECKING:
    from rattler import PrefixRecord, RepoDataRecord

T = TypeVar("T")


_unsettled = False


def run_coroutine(coro: Coroutine[Any, Any, T], *, settle: bool = True) -> T:
    """Run a py-rattler coroutine to completion.

    py-rattler's tokio workers must finish before the interpreter shuts down: without a short
    pause after an install about one process in ten crashed at exit. The pause is taken inside the
    loop after installs (``settle``), and once at exit when the last call did not take it (a
    solve followed by an install pays for only one pause).
    """
    global _unsettled

    async def wrapper() -> T:
        try:
            return await coro
        finally:
            if settle:
                await asyncio.sleep(0.05)

    if not settle and not _unsettled:
        atexit.register(_settle_at_exit)
    _unsettled = not settle
    return asyncio.run(wrapper())


def _settle_at_exit() -> None:
    if _unsettled:
        time.sleep(0.05)


def host_subdir() -> str:
    from rattler import Subdir

    return str(Subdir.current())


def detect_virtual_packages():
    """The host's virtual packages, with conda's ``CONDA_OVERRIDE_*`` variables honoured."""
    from rattler import VirtualPackage, VirtualPackageOverrides

    try:
        return VirtualPackage.detect(VirtualPackageOverrides.from_env())
    except Exception as exc:  # py-rattler raises its own types for a malformed override
        raise PmpmError(
            f"cannot detect virtual packages: {exc}",
            hint="check the CONDA_OVERRIDE_* variables in your environment",
        ) from None


# --------------------------------------------------------------------------- prefix state


def installed_records(prefix: Path) -> list[PrefixRecord]:
    """The packages a prefix holds, read from ``conda-meta/*.json`` as conda does
    (:func:`pmpm.env.inventory.prefix_records`, the one reader of a prefix)."""
    return inventory.prefix_records(prefix)


#: build strings of packages pmpm compiled start with this (then the build key)
BUILD_PREFIX = "pmpm_"


def is_compiled(record) -> bool:
    """A package pmpm built from a recipe: the conda solve neither keeps nor removes it."""
    return str(record.build).startswith(BUILD_PREFIX)


def dependency_closure(names: Iterable[str], records: Iterable[Any]) -> list[Any]:
    """The ``records`` named, with what they depend on, by name (names not among them are
    skipped): what a build prefix or a target's stack must hold for a recipe's requirements."""
    by_name = {r.name.normalized: r for r in records}
    wanted: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in wanted or name not in by_name:
            continue
        wanted.add(name)
        todo += [d.split()[0] for d in by_name[name].depends]
    return [by_name[n] for n in sorted(wanted)]


def damaged_packages(prefix: Path, records: Iterable[PrefixRecord]) -> set[str]:
    """Names of installed packages with files missing: what a killed run leaves behind."""
    damaged = set()
    for record in records:
        for rel in record.files:
            if not os.path.lexists(prefix / rel):
                damaged.add(record.name.normalized)
                break
    return damaged


# --------------------------------------------------------------------------- transactions


@dataclass(frozen=True)
class Change:
    """One line of a transaction, as ``--dry-run`` prints it."""

    kind: str  # install | upgrade | downgrade | change | remove
    name: str
    old: str | None = None
    new: str | None = None

    def __str__(self) -> str:
        if self.kind == "install":
            return f"  + {self.name} {self.new}"
        if self.kind == "remove":
            return f"  - {self.name} {self.old}"
        arrow = {"upgrade": "↑", "downgrade": "↓", "change": "~"}[self.kind]
        return f"  {arrow} {self.name} {self.old} -> {self.new}"


def _label(record) -> str:
    return f"{record.version}-{record.build}"


def diff(installed: Sequence[RepoDataRecord], target: Sequence[RepoDataRecord]) -> list[Change]:
    """What installing ``target`` over ``installed`` does, package by package."""
    old = {r.name.normalized: r for r in installed}
    new = {r.name.normalized: r for r in target}
    changes = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name), new.get(name)
        if before is None:
            changes.append(Change("install", name, new=_label(after)))
        elif after is None:
            changes.append(Change("remove", name, old=_label(before)))
        elif before.url != after.url or _label(before) != _label(after):
            if after.version > before.version:
                kind = "upgrade"
            elif after.version < before.version:
                kind = "downgrade"
            else:
                kind = "change"
            changes.append(Change(kind, name, _label(before), _label(after)))
    return changes


# --------------------------------------------------------------------------- solve


def _gateway(offline: bool):
    from rattler import Gateway, SourceConfig

    action: Literal["force-cache-only", "cache-or-fetch"] = (
        "force-cache-only" if offline else "cache-or-fetch"
    )
    return Gateway(
        cache_dir=paths.repodata_cache(),
        default_config=SourceConfig(cache_action=action),
    )


_NO_CANDIDATES = re.compile(
    r"(?:no candidates were found for|cannot find package|No candidates were found for)\s+"
    r"([A-Za-z0-9_.\-]+)"
)


def solve(
    specs: Sequence[str],
    channels: Sequence[ResolvedChannel],
    *,
    subdir: str,
    locked: Sequence[RepoDataRecord] = (),
    offline: bool = False,
    describe: dict[str, str] | None = None,
    constraints: Sequence[str] = (),
) -> list[RepoDataRecord]:
    """Solve ``specs`` against ``channels``; ``locked`` records are preferred (kept if possible).

    ``describe`` maps a package name to where the user wrote it (``file:line``), so an
    unsatisfiable request names the lines to change. Every spec and constraint is read here
    with conda's lenient rules (:func:`pmpm.spec.matchspec.parse`): the solver's own string
    parsing is strict and refuses ``fftw=*=mpi_*`` or ``libfoo 1.1.0``, which conda accepts.
    conda's regex and inner-``*`` glob versions (``numpy ^1\\.7.*$``, ``numpy *.7.*``) are made
    explicit first from the same gateway's records (:func:`pmpm.spec.matchspec.expand`).
    """
    from rattler import Channel
    from rattler import solve as rattler_solve

    requests = for_solver(list(specs))
    constraint_specs = for_solver(list(constraints))
    sources = [Channel(c.url) for c in channels]
    platforms: list[Any] = [subdir, "noarch"]  # conda subdir names, as py-rattler takes them
    gateway = _gateway(offline)

    async def go() -> list[RepoDataRecord]:
        nonlocal requests, constraint_specs
        names = pattern_names(requests + constraint_specs)
        if names:  # conda regex/glob versions: made explicit from the records the solve reads
            known: dict[str, list[RepoDataRecord]] = {}
            found = await gateway.query(sources, platforms, names, recursive=False)
            for record in (r for per_source in found for r in per_source):
                known.setdefault(record.name.normalized, []).append(record)
            requests, constraint_specs = expand(requests, known), expand(constraint_specs, known)
        return await rattler_solve(
            sources,
            requests,
            gateway=gateway,
            platforms=platforms,
            locked_packages=list(locked),
            virtual_packages=detect_virtual_packages(),
            constraints=constraint_specs or None,
        )

    try:
        return run_coroutine(go(), settle=False)
    except NoVersionMatches as exc:
        name = exc.spec.name.normalized
        exc.where = exc.where or (describe or {}).get(name)
        raise
    except Exception as exc:
        raise _explain_solve_error(exc, channels, describe or {}, offline) from None


def _explain_solve_error(exc: Exception, channels, describe: dict[str, str], offline: bool) -> PmpmError:
    text = str(exc).strip()
    kind = type(exc).__name__
    names = ", ".join(c.url for c in channels)
    if kind == "SolverError":
        mentioned = [
            f"{name} ({where})"
            for name, where in describe.items()
            if re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-])", text)
        ]
        where_lines = ("\nthe request lines involved: " + "; ".join(mentioned)) if mentioned else ""
        return PmpmError(
            "the environment cannot be solved:\n" + text + where_lines,
            hint="loosen or change the specs named above, or add a channel that has them "
            f"(searched: {names})",
        )
    if kind in ("FetchRepoDataError", "GatewayError", "CacheDirError", "IoError"):
        hint = "check the channel's URL or folder, and your network"
        if offline:
            hint = "--offline reads only cached repodata: run once online first, or use local channels"
        culprit = next((c for c in channels if c.url.rstrip("/") in text), None)
        if culprit is None:
            return PmpmError(f"cannot read the channels ({names}): {text}", hint=hint)
        return PmpmError(
            f"cannot read channel {culprit.written!r} ({culprit.url}): {text}", where=culprit.where, hint=hint
        )
    return PmpmError(f"solving failed ({kind}): {text}", hint="check the specs and channels in the env file")


# --------------------------------------------------------------------------- install


def verify_local_sha256(records: Iterable[RepoDataRecord]) -> None:
    """Check packages from ``file://`` channels against their repodata sha256.

    py-rattler trusts local files; a tampered or re-built package in a local channel whose index
    was not refreshed must stop the run before anything is linked.
    """
    local = [(r, Path(unquote(urlparse(r.url).path))) for r in records if r.url.startswith("file://")]
    for record, path in local:
        if not path.is_file():
            raise PmpmError(
                f"package {_describe(record)} is listed in the channel index but its file is missing: {path}",
                hint="re-index the channel so its repodata.json matches the files present",
            )
    checked = [(r, p, bytes(r.sha256).hex()) for r, p in local if r.sha256 is not None]
    with ThreadPoolExecutor(max_workers=4) as pool:  # hashlib releases the GIL on large reads
        digests = list(pool.map(sha256_file, [p for _, p, _ in checked]))
    for (record, path, indexed), digest in zip(checked, digests, strict=True):
        if digest != indexed:
            raise PmpmError(
                f"sha256 mismatch for package {_describe(record)}: the channel index says "
                f"{indexed}, the file {path} has {digest}",
                hint="the file changed after the channel was indexed: re-index the channel "
                "or restore the original package",
            )


def _describe(record) -> str:
    return f"{record.name.normalized} {record.version} {record.build}"


def install(
    records: Sequence[RepoDataRecord],
    prefix: Path,
    *,
    installed: Sequence[PrefixRecord],
    requested: Sequence[str] | None = None,
    solved: bool = False,
    reinstall: set[str] | None = None,
    ignored: set[str] | None = None,
) -> None:
    """Make ``prefix`` hold exactly ``records`` (packages not listed are removed, ``ignored`` kept).

    py-rattler rewrites every record's ``requested_specs`` from the list it is given, so each
    record is given back its own (see :func:`pmpm.conda.meta.requested_specs`): ``requested``
    names what the user asked for now, ``solved`` says the conda packages are a solve's answer to
    it. The prefix is then left as conda leaves one (no ``CACHEDIR.TAG``, every record an md5).
    """
    from rattler import install as rattler_install

    from pmpm.conda import meta as condameta  # meta imports this module

    specs = condameta.requested_specs(records, installed, requested, solved=solved)
    condameta.fill_md5(records)
    try:
        run_coroutine(
            rattler_install(
                list(records),
                prefix,
                cache_dir=paths.package_cache(),
                installed_packages=list(installed),
                reinstall_packages=reinstall or None,
                ignored_packages=ignored or None,
                show_progress=False,
                requested_specs=specs,
            )
        )
    except Exception as exc:
        have = {r.url for r in installed}
        needed = sum(r.size or 0 for r in records if r.url not in have)
        full = installer_failure(exc, prefix, paths.package_cache(), needed)
        if full is not None:  # a full disk, not a broken channel
            raise full from None
        text = str(exc).strip()

        padding = installer_error(text, prefix, paths.package_cache())
        if padding is not None:  # a placeholder too short for this prefix, not a broken package
            raise padding from None
        match = re.search(r"(?:fetch|link|install)\s+(\S+?\.(?:conda|tar\.bz2))", text)
        package = f" ({match.group(1)})" if match else ""
        raise PmpmError(
            f"installing into {prefix} failed{package}: {text}",
            hint="the package named above is broken or unreadable; fix or remove it from the "
            "channel (re-index it), then run pmpm again",
        ) from None
    condameta.drop_cache_tag(prefix)
