"""Stages 3 and 4, the build plan and the builds: what the compiled packages need, built on
the solved (and now installed) conda stack; compiled packages no longer listed are removed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pmpm.build import schedule
from pmpm.conda import engine as conda
from pmpm.pipeline.types import Say

if TYPE_CHECKING:
    from pmpm.build.compile_stage import Compiler
    from pmpm.build.plan import Step


def build(
    compiler: Compiler | None,
    prefix: Path,
    steps: list[Step] | None,
    say: Say,
    compiled: set[str] | None = None,
) -> None:
    """Build what changed, then drop compiled packages the env file no longer lists.

    ``steps`` is the plan made before the conda stage (None: the conda stage changed the prefix,
    so it is made now, from the installed records, with compilers, MPI and python found again).
    ``compiled`` names the compiled packages the prefix held before (None: unknown, read them);
    with none before and none wanted there is nothing to read back.
    """
    if compiler is not None:
        if steps is None:
            compiler.forget_environment()
            steps = compiler.plan(conda.installed_records(prefix))
        schedule.run(compiler, steps)
    wanted = {s.name for s in steps} if compiler is not None and steps is not None else set()
    if compiled is not None and compiled <= wanted:
        return
    removed = schedule.remove_compiled(prefix, conda.installed_records(prefix), wanted)
    if removed:
        say("removed compiled packages no longer listed: " + ", ".join(removed))
