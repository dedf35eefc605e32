"""``pmpm export PREFIX -o env.lock`` and ``pmpm conda_install NEWPREFIX --lock env.lock``.

One file carries the whole environment. It is a rattler/pixi lock file (format 7, written and
read by py-rattler's ``LockFile``) for the conda part, followed by one extra top-level mapping,
``pmpm:``, for what a conda lock cannot say: the compiled packages' recipes (their text), their
resolved sources (tarball sha256, git commit, local tree hash), target, flags, compilers and
options, the env file's ``_pmpm`` settings, the variables and the environment id.

Why one file and not a sidecar: a lock is copied around (mailed, committed beside a paper), and a
pair of files gets separated; py-rattler (and pixi, which reads the same format) ignore the
unknown top-level key, so the file still installs with those tools, and pmpm reads ``pmpm:`` back
with a YAML parser -- both directions round-trip without any conversion. The ``pmpm:`` section
stores a sha256 of the conda part so that an edit of either half is caught.

Rebuilding installs exactly the locked conda records (no solve), then builds the compiled
packages from the locked recipe texts with their sources pinned (a url with its sha256, a git
commit, a local path whose tree must hash as locked) for the locked target. A host whose CPU is
not the locked target is an error unless ``--target`` says what to build for. An environment
with a compiled stack per target locks ``targets`` and each target's packages (``stack``); its
rebuild makes every locked target's stack again (``--targets`` builds other ones).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rattler import LockFile

from pmpm.conda import engine as conda
from pmpm.env.layout import conda_layout
from pmpm.errors import PmpmError
from pmpm.host.target import host_target_name
from pmpm.pipeline.locked import LockedBuild, LockedRequest, run_locked
from pmpm.pipeline.prepare import refuse_foreign_folder
from pmpm.record.lock_export import ENVIRONMENT, FORMAT, SEPARATOR, export, lock_data
from pmpm.spec.model import PmpmSection
from pmpm.spec.targets import targets_for

if TYPE_CHECKING:
    from rattler import RepoDataRecord


__all__ = ["export", "install", "install_command", "lock_data", "read_lock"]

Say = Callable[[str], None]


# --------------------------------------------------------------------------- read


def read_lock(path: Path) -> tuple[dict[str, Any], str]:
    """The ``pmpm:`` section and the conda part's text, both checked; clear errors otherwise."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PmpmError(f"cannot read the lock file: {exc.strerror}", where=where) from None
    except UnicodeDecodeError:
        raise PmpmError(
            "the lock file is not text", where=where, hint="give a file written by pmpm export"
        ) from None
    conda_text, sep, _ = text.partition(SEPARATOR)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PmpmError(
            f"the lock file is not valid YAML: {str(exc).splitlines()[0]}",
            where=where,
            hint="the file is damaged; export it again with pmpm export",
        ) from None
    section = data.get("pmpm") if isinstance(data, dict) else None
    if not sep or not isinstance(section, dict):
        raise PmpmError(
            "this is not a pmpm lock file (no `pmpm:` section)",
            where=where,
            hint="write one with `pmpm export PREFIX -o env.lock`",
        )
    if section.get("format") != FORMAT:
        raise PmpmError(f"lock format {section.get('format')!r} is not {FORMAT}", where=where)
    if hashlib.sha256(conda_text.encode()).hexdigest() != section.get("conda_sha256"):
        raise PmpmError(
            "the conda part of the lock file was changed after pmpm wrote it (its sha256 differs)",
            where=where,
            hint="export the lock again from the environment",
        )
    return section, conda_text


def _locked_records(path: Path, conda_text: str, subdir: str) -> list[RepoDataRecord]:
    with tempfile.TemporaryDirectory(prefix="pmpm-lock-") as tmp:
        conda_path = Path(tmp) / "conda.lock"
        conda_path.write_text(conda_text, encoding="utf-8")
        try:
            lock = LockFile.from_path(conda_path)
        except Exception as exc:  # py-rattler's parse errors have their own types
            raise PmpmError(
                f"the conda part of the lock file does not parse: {exc}", where=str(path)
            ) from None
    environment = lock.environment(ENVIRONMENT) or lock.default_environment()
    platform = next((p for p in lock.platforms() if p.name == subdir), None)
    if environment is None or platform is None:
        raise PmpmError(f"the lock file has no packages for {subdir}", where=str(path))
    return environment.conda_repodata_records_for_platform(platform) or []


# --------------------------------------------------------------------------- rebuild


def _host_target() -> str:
    return host_target_name() or "unknown"


def _choose_target(section: dict[str, Any], override: str | None, say: Say) -> str | None:
    locked = sorted({str(c["target"]) for c in section.get("compiled", []) if c.get("target")})
    if not locked:
        return override
    if override is not None:
        if locked != [override]:
            say(
                f"note: building for target {override} (--target); the lock was built for {', '.join(locked)}"
            )
        return override
    here = _host_target()
    if locked == [here]:
        return here
    raise PmpmError(
        f"the lock's compiled packages were built for target {', '.join(locked)}, this host is {here}",
        hint=f"pass --target {locked[0]} to build the same code (it runs only on CPUs with that "
        f"target's features), or --target {here} to build for this host (a different environment id)",
    )


def _choose_targets(locked: tuple[str, ...], override: str | None, say: Say) -> tuple[str, ...]:
    """The targets a lock with a stack per target is rebuilt for: its own, or ``--targets``."""
    if override is None:
        return locked

    chosen = targets_for(PmpmSection(), override)
    if chosen != locked:
        had = ", ".join(locked) or "one"
        say(f"note: building for targets {', '.join(chosen)} (--targets); the lock has {had}")
    return chosen


def install(
    prefix: Path,
    lock_path: Path,
    say: Say,
    *,
    target: str | None = None,
    targets: str | None = None,
    jobs: int = 0,
    offline: bool = False,
    keep_build: bool = False,
) -> int:
    """``pmpm conda_install PREFIX --lock FILE``: the locked conda records (no solve), then the
    locked compiled packages; the record is written at the end like any other run."""
    section, conda_text = read_lock(lock_path)
    subdir = conda.host_subdir()
    if section.get("subdir") not in (None, subdir):
        raise PmpmError(
            f"the lock is for {section.get('subdir')}, this machine is {subdir}", where=str(lock_path)
        )
    records = _locked_records(lock_path, conda_text, subdir)
    locked_targets = tuple(str(t) for t in section.get("targets") or [])
    if targets is not None or locked_targets:  # a stack per target: each as locked, or --targets
        chosen = None
        stacks = _choose_targets(locked_targets, targets, say)
    else:
        chosen, stacks = _choose_target(section, target, say), ()
    layout = conda_layout(prefix, stacks)
    prefix = layout.root
    for stack in layout.prefixes:
        refuse_foreign_folder(stack)
    builds = tuple(
        LockedBuild(
            name=item["name"],
            recipe_text=(item.get("recipe") or {}).get("text"),
            request=dict(item["request"]),
            identity=(item.get("source") or {}).get("identity"),
            flags=item.get("flags") or {},
            target=item.get("target"),
        )
        for item in section.get("compiled", [])
    )
    request = LockedRequest(
        layout=layout,
        lock_path=Path(lock_path),
        records=records,
        requested=list(section.get("requested") or []),
        variables=dict(section.get("variables") or {}),
        env_file_text=section.get("env_file"),
        builds=builds,
        settings=dict(section.get("settings") or {}),
        target=chosen,
        jobs=jobs,
        offline=offline,
        keep_build=keep_build,
    )
    record = run_locked(request, say)
    if section.get("pip"):
        say(
            "note: pip packages of the locked environment are not installed: "
            + ", ".join(f"{p['name']} {p['version']}" for p in section["pip"])
        )
    same = record.environment_id == section.get("environment_id")
    say(
        f"{prefix} is ready: environment id {record.environment_id}"
        + (" (the same as the lock's)" if same else f" (the lock's is {section.get('environment_id')})")
    )
    if not same:
        say(
            "note: the rebuilt environment differs from the locked one; `pmpm diff` with the "
            "original record shows how"
        )
    return 0


def install_command(
    prefix: Path,
    lock_path: Path | None,
    file: Path | None,
    say: Say,
    *,
    target: str | None = None,
    targets: str | None = None,
    jobs: int = 0,
    offline: bool = False,
    keep_build: bool = False,
    dry_run: bool = False,
) -> int:
    """The CLI's ``conda_install`` when ``--lock`` is given (or ``--file`` is missing)."""
    if lock_path is None:
        raise PmpmError(
            "conda_install needs an env file (--file env.yml) or a lock file (--lock env.lock)",
            hint="pmpm conda_install PREFIX --file environment.yml",
        )
    if file is not None:
        raise PmpmError("give --file or --lock, not both", hint="a lock file already says everything")
    if dry_run:
        section, conda_text = read_lock(lock_path)

        records = _locked_records(lock_path, conda_text, conda.host_subdir())
        say(
            f"dry run: would install {len(records)} locked conda packages and build "
            f"{len(section.get('compiled', []))} compiled packages (nothing was changed):"
        )
        for r in records:
            say(f"  + {r.name.normalized} {r.version}-{r.build}")
        for c in section.get("compiled", []):
            say(f"  + {c['name']} {c['version']} (compiled, target {c.get('target')})")
        if targets is None and not section.get("targets"):
            _choose_target(section, target, say)
        return 0
    return install(
        prefix,
        lock_path,
        say,
        target=target,
        targets=targets,
        jobs=jobs,
        offline=offline,
        keep_build=keep_build,
    )
