"""The pipeline every install runs, one stage per module, with typed hand-offs
(:mod:`pmpm.pipeline.types`):

1. prepare (:mod:`.prepare`): the env file, the installer, the stacks, the recipes and the
   conda specs they need -> ``Loaded``, ``Prepared``
2. conda stage (:mod:`.conda_stage`): solve, say what changes, apply it -> ``Solved``, ``Changes``
3. build plan and 4. builds (:mod:`.builds`, with :mod:`pmpm.build.compile_stage` and
   :mod:`pmpm.build.schedule`)
   -> ``BuildPlan`` (frozen: steps, decisions, reasons, the trees' stamps), ``BuildResult``
5. record (inside the journal), 6. publish (modules, activation, kernel), 7. no-op state
   (:mod:`.finish`, from the ``BuildPlan`` the builds carried out)

With several CPU targets (``Layout.targets``), :mod:`.targets` runs the conda stage once and
stages 3 and 4 once per target, each into its own stack.

All changes happen inside one :func:`pmpm.env.transaction.transaction` (prefix locks, repair of
an interrupted run, journal, rollback). The front doors -- :mod:`pmpm.commands.conda_install`,
:mod:`pmpm.commands.system_install` -- build a :class:`Request` after their no-op check and call
:func:`run`; ``--lock`` (:mod:`pmpm.record.lock`) builds a ``LockedRequest`` and calls
:func:`pmpm.pipeline.locked.run_locked`, under the same transaction.
"""

from __future__ import annotations

import time

from pmpm.env.transaction import transaction
from pmpm.pipeline import stacks
from pmpm.pipeline.conda_stage import apply, apply_backend, changes, solve
from pmpm.pipeline.finish import finish, record
from pmpm.pipeline.prepare import load, prepare, up_to_date
from pmpm.pipeline.types import Changes, Loaded, Prepared, Request, Say, Solved
from pmpm.progress import run_summary

__all__ = ["Changes", "Loaded", "Prepared", "Request", "Solved", "dry_run", "run"]


def run(request: Request, say: Say) -> int:
    """Make the request's stacks what its env file asks for."""
    began = time.monotonic()
    loaded = load(request, say)
    if loaded.opts.dry_run:
        return dry_run(loaded, say)
    if loaded.opts.slurm:  # checked now; each target's builds then run as a Slurm job (pmpm.cluster)
        from pmpm.cluster import build_jobs  # the build stage's: not loaded by other runs

        build_jobs.start(loaded, say)
    layout = loaded.layout
    stale = stacks.stale_stacks(request.layout, layout)  # a target dropped: its stack goes
    locked = [*layout.prefixes, *(s for s in stale if s not in layout.prefixes)]
    with transaction(locked, say, roots=[layout.root]) as txn:
        if up_to_date(loaded):
            say(f"{layout.root} is up to date with {loaded.opts.file}")
            return 0
        if layout.targets:  # a compiled stack per target
            from pmpm.pipeline import targets  # imports the build stage: a conda-only run does not

            return targets.run(loaded, txn, stale, say)
        prepared = prepare(loaded, say)
        if loaded.opts.backend != "rattler":
            with txn.changing():
                result = apply_backend(prepared, say)
                record(prepared, say)
            finish(prepared, result.plan, say)
            say(f"{layout.root} is ready ({loaded.opts.backend})")
            if (line := run_summary(result, began)) is not None:
                say(line)
            return 0
        solved = solve(prepared, say)
        todo = changes(solved)
        if todo.nothing(solved) and not stale:
            record(prepared, say)
            finish(prepared, todo.plan, say)
            total = len(solved.records) + len(todo.compiled)
            say(f"{layout.root} already has what {loaded.opts.file} asks for ({total} packages)")
            return 0
        with txn.changing():  # the journal: any failure in here puts every stack back
            result = apply(solved, todo, say)
            record(prepared, say)
        finish(prepared, result.plan, say)
        stacks.clear(stale, layout, say)
        built = len(result.plan) if result.plan is not None else 0
        say(f"{layout.root} is ready: {len(solved.records)} conda packages, {built} compiled")
        if (line := run_summary(result, began)) is not None:
            say(line)
    return 0


def dry_run(loaded: Loaded, say: Say) -> int:
    """Say what a run would change; change nothing (no lock taken)."""
    # the same text as `pmpm plan` (which also has --json, --check); plan imports this package
    from pmpm.commands import plan

    plan.show(plan.compute(loaded, say), say)  # the conda stack and every target's stack
    return 0
