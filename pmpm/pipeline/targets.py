"""Several CPU targets: one conda stage, then the compiled packages built once per target, each
into its own stack (:meth:`pmpm.env.layout.Layout.for_target`), in the run's one transaction.

The conda stack is solved once, for the env file's dependencies and every target's recipe
requirements, and installed as a conda-only run would (:mod:`pmpm.pipeline.conda_stage`). Then
each target's stack is planned and built by a :class:`pmpm.build.compile_stage.Compiler` of its
own, for that target (the target is part of every build key, so builds and the binary cache keep
the targets apart):

- system_install: the compiled stack beside the conda stack, exactly as with one target;
- conda_install: the target's stack holds, beside its compiled packages, the conda packages its
  recipes require, linked from the solved conda stack's packages (the same records, hard links
  from the package cache; :func:`link_requirements`): each stack is then an ordinary conda_install prefix
  for its builds -- relocatable builds in a padded build prefix, the binary cache, conda
  packages as dependencies -- so a target built here and the same target built alone elsewhere
  (a Slurm job, :mod:`pmpm.cluster.build_jobs`) have the same build keys.

The record and the no-op state cover the whole layout; a target dropped from the env file has
its stack removed (:mod:`pmpm.pipeline.stacks`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm.build.plan import BuildPlan
from pmpm.build.result import BuildResult
from pmpm.conda import engine as conda
from pmpm.conda import history, variables
from pmpm.conda.channels import channel_alias
from pmpm.env.layout import Layout
from pmpm.pipeline.builds import build
from pmpm.pipeline.conda_stage import apply, apply_backend, changes, solve
from pmpm.pipeline.finish import finish, record
from pmpm.pipeline.prepare import compiler_for, prepare
from pmpm.pipeline.stacks import clear
from pmpm.pipeline.types import Loaded, Prepared, Say

if TYPE_CHECKING:
    from pmpm.build.compile_stage import Compiler
    from pmpm.env.transaction import Transaction


@dataclass(frozen=True)
class TargetStack:
    """One target's compiled stack: its compile stage (None: no packages to build), what it
    holds now, and its plan when it could be made before any change (None: made after)."""

    target: str
    stack: Path
    compiler: Compiler | None
    installed: list[Any]  # rattler PrefixRecord
    plan: BuildPlan | None = None

    @property
    def compiled(self) -> set[str]:
        return {r.name.normalized for r in self.installed if conda.is_compiled(r)}

    def idle(self) -> bool:
        """The stack already holds what the env file asks for."""
        wanted = set(self.plan.names) if self.plan is not None else set()
        planned = self.plan is not None and self.plan.idle
        asked = _asked(self.compiler)
        return (
            (self.compiler is None or planned)
            and self.compiled <= wanted
            and not history.stale(self.stack, asked)
        )


def conda_view(loaded: Loaded) -> Loaded:
    """The conda stage's view of a layout with targets: the conda stack alone, asked for the env
    file's conda dependencies (the packages to build are the targets' business)."""
    layout, spec = loaded.layout, loaded.spec
    assert layout.conda is not None
    stack = Layout(root=layout.root, kind=layout.kind, conda=layout.conda, compile=layout.conda)
    alone = replace(spec, pmpm=replace(spec.pmpm, packages=[]))
    return replace(loaded, spec=alone, layout=stack)


def run(loaded: Loaded, txn: Transaction, stale: list[Path], say: Say) -> int:
    """The conda stage once, then every target's builds, all inside ``txn``'s journal."""
    layout = loaded.layout
    compilers = {
        t: compiler_for(replace(loaded, layout=layout.for_target(t)), say, t) for t in layout.targets
    }
    targets = ", ".join(layout.targets)
    conda_side: list[Any] = []
    solved = todo = None
    if layout.conda is not None:
        prepared = prepare(conda_view(loaded), say)
        specs = (
            [s for c in compilers.values() if c is not None for s in c.conda_specs()]
            if prepared.channels
            else []
        )
        prepared = replace(prepared, recipe_specs=tuple(dict.fromkeys(specs)))
        conda_side = conda.installed_records(layout.conda)
    else:
        prepared = Prepared(loaded, None, channels=[], specs=[], recipe_specs=())
    whole = replace(prepared, loaded=loaded)  # the record and the no-op state: every stack
    alias = channel_alias(loaded.opts.channel_alias)
    # the env file's variables live with the conda stack (its conda stage writes them), else with
    # each target's stack, where activation and the modules of that target read them
    homes = [] if layout.conda is not None else [layout.stack(t) for t in layout.targets]
    wanted = loaded.spec.variables
    variables_stale = any(variables.read(home) != wanted for home in homes)
    if loaded.opts.backend != "rattler":
        with txn.changing():
            if layout.conda is not None:
                apply_backend(prepared, say)
            results = _build_all(layout, _stacks(layout, compilers), alias, say, slurm=loaded.opts.slurm)
            for home in homes:
                variables.write(home, wanted)
            record(whole, say)
        finish(whole, merged(results), say)
        clear(stale, layout, say)
        count = len(layout.targets)
        say(f"{layout.root} is ready ({loaded.opts.backend}), compiled for {count} targets ({targets})")
        return 0
    if layout.conda is not None:
        solved = solve(prepared, say)
        todo = changes(solved)
    conda_changes = todo is not None and bool(todo.conda or todo.damaged)
    stacks = _stacks(layout, compilers, None if conda_changes else conda_side)
    quiet = solved is None or (todo is not None and todo.nothing(solved))
    if quiet and all(s.idle() for s in stacks) and not stale and not variables_stale:
        record(whole, say)
        finish(whole, merged([_planned(s.plan) for s in stacks]), say)
        say(f"{layout.root} already has what {loaded.opts.file} asks for, for {targets}")
        return 0
    with txn.changing():  # the journal of every stack: any failure puts them all back
        if solved is not None and todo is not None:
            apply(solved, todo, say)
            conda_side = conda.installed_records(layout.conda) if layout.conda is not None else []
        results = _build_all(layout, stacks, alias, say, conda_side, slurm=loaded.opts.slurm)
        for home in homes:
            variables.write(home, wanted)
        record(whole, say)
    finish(whole, merged(results), say)
    clear(stale, layout, say)
    built = sum(len(r.plan) for r in results if r.plan is not None)
    conda_count = len(solved.records) if solved is not None else 0
    say(
        f"{layout.root} is ready: {conda_count} conda packages, {built} compiled for "
        f"{len(layout.targets)} targets ({targets})"
    )
    return 0


def _asked(compiler: Compiler | None) -> list[str]:
    return [r.name for r in compiler.spec.pmpm.packages] if compiler is not None else []


def _stacks(
    layout: Layout, compilers: dict[str, Compiler | None], conda_side: list[Any] | None = None
) -> list[TargetStack]:
    """Each target's stack as it is; planned now when ``conda_side`` (the conda stack's records
    after this run's conda stage) is known and the stack already holds what it needs of it."""
    found = []
    for target, compiler in compilers.items():
        stack = layout.stack(target)
        installed = conda.installed_records(stack)
        plan = None
        synced = layout.kind == "system" or (
            compiler is not None
            and conda_side is not None
            and needed_records(compiler, conda_side, installed) is None
        )
        if compiler is not None and conda_side is not None and synced:
            plan = compiler.plan(installed)
        found.append(TargetStack(target, stack, compiler, installed, plan))
    return found


def needed_records(compiler: Compiler, conda_side: list[Any], installed: list[Any]) -> list[Any] | None:
    """The conda records a conda_install target stack must hold for its recipes (what they
    require, with what that requires), or None when it holds exactly those already."""
    needed = conda.dependency_closure([_spec_name(s) for s in compiler.conda_specs()], conda_side)
    have = {(r.name.normalized, str(r.version), r.build) for r in installed if not conda.is_compiled(r)}
    if have == {(r.name.normalized, str(r.version), r.build) for r in needed}:
        return None
    return needed


def _spec_name(spec: str) -> str:
    """The package name of a recipe's conda requirement, read as the planner reads it."""
    return spec.split()[0].split("=")[0].split("<")[0].split(">")[0].split("::")[-1].lower()


def link_requirements(compiler: Compiler, stack: Path, conda_side: list[Any], say: Say) -> None:
    """Give a conda_install target stack the conda packages its recipes require (the conda
    stack's records ``conda_side``, linked from the package cache as there), keeping its
    compiled packages; nothing when it holds exactly those already."""
    installed = conda.installed_records(stack)
    needed = needed_records(compiler, conda_side, installed)
    if needed is None:
        return
    keep = [r for r in installed if conda.is_compiled(r)]
    names = ", ".join(r.name.normalized for r in needed) or "none"
    say(f"{stack}: the conda packages its recipes need: {names}")
    conda.install([*keep, *needed], stack, installed=installed, requested=[], ignored=set())


def _build_all(
    layout: Layout,
    stacks: list[TargetStack],
    alias: str,
    say: Say,
    conda_side: list[Any] | None = None,
    *,
    slurm: bool = False,
) -> list[BuildResult]:
    """Build each target into its stack (synced first, in conda_install mode), and write its
    conda history."""
    results = []
    for item in stacks:
        plan = item.plan
        say(f"target {item.target}: compiled packages into {item.stack}")
        if item.compiler is not None and layout.kind != "system" and plan is None:
            side = (
                conda_side if conda_side is not None else conda.installed_records(layout.conda or item.stack)
            )
            link_requirements(item.compiler, item.stack, side, say)
        results.append(build(item.compiler, item.stack, plan, say, item.compiled, slurm=slurm))
        after = conda.installed_records(item.stack)
        history.append(item.stack, item.installed, after, _asked(item.compiler), alias=alias)
    return results


def _planned(plan: BuildPlan | None) -> BuildResult:
    return BuildResult(plan=plan)


def merged(results: list[BuildResult]) -> BuildPlan | None:
    """One plan for the no-op state: every target's steps, local trees and watched files."""
    plans = [r.plan for r in results if r.plan is not None]
    if not plans:
        return None

    trees: dict[str, str] = {}
    for plan in plans:
        trees.update(plan.trees)
    watched = tuple(dict.fromkeys(w for plan in plans for w in plan.watched))
    return BuildPlan(tuple(s for plan in plans for s in plan.steps), trees=trees, watched=watched)
