"""The pipeline from a lock (``pmpm conda_install PREFIX --lock FILE``): the locked conda records
installed as they are (no solve), then the locked compiled packages built from the locked recipe
texts with their sources pinned, then the record -- under the same transaction as any run.

:mod:`pmpm.record.lock` reads and checks the lock file and hands over a :class:`LockedRequest`; the
build stage gets an :class:`pmpm.spec.model.EnvSpec` made from it directly, and the record the env
file's text the lock carries: no env file is written and read again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm import paths
from pmpm.build import schedule
from pmpm.build.compile_stage import Compiler
from pmpm.conda import engine as conda
from pmpm.conda import history, variables
from pmpm.conda.channels import channel_alias
from pmpm.env import layout as layouts
from pmpm.env.layout import Layout
from pmpm.env.transaction import transaction
from pmpm.errors import PmpmError
from pmpm.fsutil import atomic_write_text
from pmpm.pipeline.targets import link_requirements
from pmpm.pipeline.types import Say
from pmpm.record.api import location_tokens, neutral, write_record
from pmpm.spec.model import EnvSpec, PackageRequest, PmpmSection
from pmpm.spec.pmpm_section import PACKAGE_OPTION_TYPES

if TYPE_CHECKING:
    from pmpm.record.model import Record


@dataclass(frozen=True)
class LockedBuild:
    """One compiled package as the lock has it."""

    name: str
    recipe_text: str | None
    request: dict[str, Any]  # how the rebuild asks for it: version, pinned source, options
    identity: str | None  # the locked source's identity (sha256:, git:, tree:)
    flags: dict[str, Any]  # with the environment's location as tokens
    target: str | None = None  # the target it was built for (a stack per target: which stack)


@dataclass(frozen=True)
class LockedRequest:
    """What ``--lock`` asks for, read and checked from the lock file."""

    layout: Layout
    lock_path: Path
    records: list[Any]  # rattler RepoDataRecord, exactly the locked ones
    requested: list[str]  # the specs the locked environment was asked for
    variables: dict[str, str]
    env_file_text: str | None
    builds: tuple[LockedBuild, ...]
    settings: dict[str, Any]  # the env file's `_pmpm` keys that change builds (mpi, compilers, tests)
    target: str | None  # None: the recipes' own choice
    jobs: int = 0
    offline: bool = False
    keep_build: bool = False


def run_locked(request: LockedRequest, say: Say) -> Record:
    """Install the locked environment into the request's prefix; returns its new record. With a
    stack per target (``request.layout.targets``) each target's stack is rebuilt, holding the
    conda packages its recipes require as any run makes it (:mod:`pmpm.pipeline.targets`)."""
    layout = request.layout
    prefix = layout.root
    conda.verify_local_sha256(request.records)
    with transaction(layout.prefixes, say, roots=[prefix]) as txn, txn.changing():
        installed = conda.installed_records(prefix)
        say(f"installing {len(request.records)} locked conda packages into {prefix} (no solve)")
        conda.install(
            request.records,
            prefix,
            installed=installed,
            requested=request.requested,
            ignored={r.name.normalized for r in installed if conda.is_compiled(r)},
        )
        variables.write(prefix, request.variables)
        if request.builds and not layout.targets:
            _build(request, locked_spec(request, paths.from_lock_dir(prefix) / "recipes"), say)
        _write_history(prefix, installed, request.requested)
        for target in layout.targets:
            stack = layout.stack(target)
            before = conda.installed_records(stack)
            one = replace(
                request, layout=layout.for_target(target), target=target, builds=_of(request, target)
            )
            spec = locked_spec(one, paths.from_lock_dir(prefix) / "recipes")
            _build(one, spec, say, conda_side=conda.installed_records(prefix))
            _write_history(stack, before, [])
        layouts.write(layout)
        # in the journal: part of the prefix. The record keeps the original env file's text,
        # from the lock (which it then names as where that text was read)
        if request.env_file_text:
            return write_record(request.layout, Path(request.lock_path), env_text=request.env_file_text)
        return write_record(request.layout, None)


def locked_spec(request: LockedRequest, recipes: Path) -> EnvSpec:
    """What the build stage gets, made from the lock directly: each compiled package's request
    with its source pinned, and the lock's ``_pmpm`` settings.

    The locked recipe texts are the one thing written: as files into ``recipes``, because the
    recipe machinery (:class:`pmpm.build.recipe.RecipeBook`) reads recipe folders and a recipe's
    origin -- the base of its relative sources, the name the record and errors give -- is its
    file."""
    recipes.mkdir(parents=True, exist_ok=True)
    packages = []
    for item in request.builds:
        if item.recipe_text:
            atomic_write_text(recipes / f"{item.name}.yaml", item.recipe_text)
        options = {k: copy.deepcopy(v) for k, v in item.request.items() if v is not None}
        if request.target is not None:
            options["target"] = request.target
        for key in PACKAGE_OPTION_TYPES:  # typed as the env file reader types them
            if key in options:
                value = str(options[key])
                options[key] = (
                    (recipes.parent / Path(value).expanduser()).resolve() if key == "path" else value
                )
        packages.append(PackageRequest(item.name, options, 0))
    settings = request.settings
    section = PmpmSection(
        recipes=[recipes],
        packages=packages,
        compilers=dict(settings.get("compilers") or {}),
        mpi=settings.get("mpi"),
        tests=bool(settings.get("tests", True)),
    )
    return EnvSpec(path=Path(request.lock_path).absolute(), pmpm=section)


def _build(request: LockedRequest, spec: EnvSpec, say: Say, conda_side: list[Any] | None = None) -> None:
    """Build the locked compiled packages into the request's compiled stack, refusing a source
    that is not the locked one. ``conda_side``: the conda stack's records, when the compiled
    stack is one target's of several (it gets the conda packages its recipes require)."""
    prefix = request.layout.compile
    compiler = Compiler(
        spec,
        prefix,
        jobs=request.jobs,
        offline=request.offline,
        say=say,
        keep_build=request.keep_build,
        base=prefix,
        system=False,
    )
    if conda_side is not None:
        link_requirements(compiler, prefix, conda_side, say)
    plan = compiler.plan(conda.installed_records(prefix))
    locked = {b.name: b for b in request.builds}
    tokens = location_tokens({"prefix": prefix})
    for step in plan.steps:
        want = locked.get(step.name)
        if want is None:
            continue
        if step.identity != want.identity:
            raise PmpmError(
                f"the source of {step.name} is not the locked one: locked {want.identity}, "
                f"found {step.identity}",
                where=step.where,
                hint="restore the source the lock names (a local tree must be unchanged), or export "
                "a new lock",
            )
        flags = neutral(step.inputs.flags, tokens)
        if flags != want.flags:
            changed = [k for k in flags if flags.get(k) != want.flags.get(k)]
            say(
                f"note: {step.name} builds with other flags than the lock's ({', '.join(changed)}): "
                + "; ".join(f"{k}: {want.flags.get(k)!r} -> {flags.get(k)!r}" for k in changed)
            )
    schedule.run(compiler, plan)


def _of(request: LockedRequest, target: str) -> tuple[LockedBuild, ...]:
    """The locked builds of one target's stack (a target the lock does not have, asked for with
    ``--targets``: the packages of its first target, built for this one)."""
    builds = request.builds
    return tuple(b for b in builds if b.target == target) or tuple(
        b for b in builds if builds and b.target == builds[0].target
    )


def _write_history(prefix: Path, before: list[Any], requested: list[str]) -> None:
    """conda's history of the rebuilt prefix: the lock's requested specs and compiled packages."""
    after = conda.installed_records(prefix)
    compiled = [s for r in after if conda.is_compiled(r) for s in r.requested_specs]
    history.append(prefix, before, after, [*requested, *compiled], alias=channel_alias())
