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

All changes happen inside one :func:`pmpm.env.transaction.transaction` (prefix locks, repair of
an interrupted run, journal, rollback). The front doors -- :mod:`pmpm.commands.conda_install`,
:mod:`pmpm.commands.system_install` -- build a :class:`Request` after their no-op check and call
:func:`run`; ``--lock`` (:mod:`pmpm.record.lock`) builds a ``LockedRequest`` and calls
:func:`pmpm.pipeline.locked.run_locked`, under the same transaction.
"""

from __future__ import annotations

from pmpm.env.transaction import transaction
from pmpm.pipeline.conda_stage import apply, apply_backend, changes, solve
from pmpm.pipeline.finish import finish, record
from pmpm.pipeline.prepare import load, prepare, up_to_date
from pmpm.pipeline.types import Changes, Loaded, Prepared, Request, Say, Solved

__all__ = ["Changes", "Loaded", "Prepared", "Request", "Solved", "dry_run", "run"]


def run(request: Request, say: Say) -> int:
    """Make the request's stacks what its env file asks for."""
    loaded = load(request, say)
    if loaded.opts.dry_run:
        return dry_run(loaded, say)
    layout = loaded.layout
    with transaction(layout.prefixes, say, roots=[layout.root]) as txn:
        if up_to_date(loaded):
            say(f"{layout.root} is up to date with {loaded.opts.file}")
            return 0
        prepared = prepare(loaded, say)
        if loaded.opts.backend != "rattler":
            with txn.changing():
                result = apply_backend(prepared, say)
                record(prepared, say)
            finish(prepared, result.plan, say)
            say(f"{layout.root} is ready ({loaded.opts.backend})")
            return 0
        solved = solve(prepared, say)
        todo = changes(solved)
        if todo.nothing(solved):
            record(prepared, say)
            finish(prepared, todo.plan, say)
            total = len(solved.records) + len(todo.compiled)
            say(f"{layout.root} already has what {loaded.opts.file} asks for ({total} packages)")
            return 0
        with txn.changing():  # the journal: any failure in here puts every stack back
            result = apply(solved, todo, say)
            record(prepared, say)
        finish(prepared, result.plan, say)
        built = len(result.plan) if result.plan is not None else 0
        say(f"{layout.root} is ready: {len(solved.records)} conda packages, {built} compiled")
    return 0


def dry_run(loaded: Loaded, say: Say) -> int:
    """Say what a run would change; change nothing (no lock taken)."""
    from pmpm.commands import plan  # the same text as `pmpm plan` (which also has --json, --check)

    plan.show(plan.compute(loaded, say), say)
    return 0
