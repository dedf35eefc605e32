"""A recipe's own shell script, for builds no build system describes.

The only place pmpm runs a shell: the script is the recipe author's, run as ``bash -e -c`` so the
first failing command fails the build. It gets the same layout the other builders use, under the
names conda-build recipes already know (PREFIX, SRC_DIR, CPU_COUNT) plus DESTDIR and STAGE_PREFIX,
so the script installs into the stage rather than the live prefix.
"""

from __future__ import annotations

from pathlib import Path

from pmpm.builders import BuildContext, Step
from pmpm.builders.make import flag_variables
from pmpm.errors import PmpmError


class ScriptBuilder:
    name = "script"

    def supports(self, source_dir: Path) -> bool:
        return False  # never guessed from a tree: chosen by a recipe that has a script

    def steps(self, ctx: BuildContext) -> list[Step]:
        if not ctx.script or not ctx.script.strip():
            raise PmpmError(
                "the script build system needs a script",
                where=ctx.name,
                hint="add a script: to the recipe, or name another build system",
            )
        env = {
            "PREFIX": str(ctx.prefix),
            "DESTDIR": str(ctx.stage_dir),
            "STAGE_PREFIX": str(ctx.staged_prefix),
            "SRC_DIR": str(ctx.source_dir),
            "BUILD_DIR": str(ctx.build_dir),
            "CPU_COUNT": str(ctx.jobs),
            "JOBS": str(ctx.jobs),
            "PKG_NAME": ctx.name,
            "PKG_VERSION": ctx.version,
            **flag_variables(ctx.flags, keep_empty=True),
        }
        # shell: argv holds the script alone; the executor runs it as ``bash -e -c SCRIPT``.
        # the recipe's explicit `script:` is the one place a recipe's text runs in a shell
        step = Step("script", (ctx.script,), ctx.build_dir, env=env, shell=True)  # shell: recipe script
        return [step]
