"""Stages 3 and 4, the build plan and the builds: what the compiled packages need, built on
the solved (and now installed) conda stack; compiled packages no longer listed are removed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pmpm.build import schedule
from pmpm.build.compile_stage import Compiler
from pmpm.build.plan import BuildPlan
from pmpm.build.result import BuildResult
from pmpm.conda import engine as conda
from pmpm.pipeline.types import Say


def build(
    compiler: Compiler | None,
    prefix: Path,
    plan: BuildPlan | None,
    say: Say,
    compiled: set[str] | None = None,
    *,
    slurm: bool = False,
) -> BuildResult:
    """Build what changed, then drop compiled packages the env file no longer lists.

    ``plan`` is the plan made before the conda stage (None: the conda stage changed the prefix,
    so it is made now, from the installed records, with compilers, MPI and python found again).
    ``compiled`` names the compiled packages the prefix held before (None: unknown, read them);
    with none before and none wanted there is nothing to read back. ``slurm``: the run's
    ``--slurm``, whose jobs build the plan (:mod:`pmpm.cluster.build_jobs`, loaded only then).
    """
    result = BuildResult(plan=None)
    if compiler is not None:
        if plan is None:
            plan = compiler.plan(conda.installed_records(prefix), stacks_changed=True)
        if slurm:  # built by a job, then planned again
            from pmpm.cluster.build_jobs import delegate  # started by pipeline.run: loaded

            plan = delegate(compiler, prefix, plan, say)
        result = schedule.run(compiler, plan)
    wanted = set(result.plan.names) if result.plan is not None else set()
    if compiled is not None and compiled <= wanted:
        return result
    removed = schedule.remove_compiled(prefix, conda.installed_records(prefix), wanted)
    if removed:
        say("removed compiled packages no longer listed: " + ", ".join(removed))
    return replace(result, removed=tuple(removed))
