"""Stages 3 and 4, the build plan and the builds: what the compiled packages need, built on
the solved (and now installed) conda stack; compiled packages no longer listed are removed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pmpm.build import schedule
from pmpm.build.compile_stage import Compiler
from pmpm.build.plan import BuildPlan, BuildResult
from pmpm.cluster.build_jobs import delegate
from pmpm.conda import engine as conda
from pmpm.pipeline.types import Say


def build(
    compiler: Compiler | None,
    prefix: Path,
    plan: BuildPlan | None,
    say: Say,
    compiled: set[str] | None = None,
) -> BuildResult:
    """Build what changed, then drop compiled packages the env file no longer lists.

    ``plan`` is the plan made before the conda stage (None: the conda stage changed the prefix,
    so it is made now, from the installed records, with compilers, MPI and python found again).
    ``compiled`` names the compiled packages the prefix held before (None: unknown, read them);
    with none before and none wanted there is nothing to read back.
    """
    result = BuildResult(plan=None)
    if compiler is not None:
        if plan is None:
            plan = compiler.plan(conda.installed_records(prefix), stacks_changed=True)

        plan = delegate(compiler, prefix, plan, say)  # --slurm: built by a job, planned again
        result = schedule.run(compiler, plan)
    wanted = set(result.plan.names) if result.plan is not None else set()
    if compiled is not None and compiled <= wanted:
        return result
    removed = schedule.remove_compiled(prefix, conda.installed_records(prefix), wanted)
    if removed:
        say("removed compiled packages no longer listed: " + ", ".join(removed))
    return replace(result, removed=tuple(removed))
