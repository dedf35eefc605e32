"""GNU autotools: ``configure && make && make install DESTDIR=...``, built out of tree.

The flags are in the environment already, but are also given to ``configure`` as ``VAR=value``
arguments: autoconf then treats them as precious, records them in ``config.log`` and
``config.status``, so a later ``config.status --recheck`` (which make runs by itself when a
``configure.ac`` or ``Makefile.am`` changes) keeps them.
"""

from __future__ import annotations

from pathlib import Path

from pmpm.builders import BuildContext, Step
from pmpm.builders.make import assignments

BOOTSTRAP_INPUTS = ("configure.ac", "configure.in")


class AutotoolsBuilder:
    name = "autotools"

    def supports(self, source_dir: Path) -> bool:
        return (source_dir / "configure").is_file() or any(
            (source_dir / f).is_file() for f in BOOTSTRAP_INPUTS
        )

    def steps(self, ctx: BuildContext) -> list[Step]:
        src = ctx.source_dir
        steps = []
        if not (src / "configure").is_file():
            # A git checkout ships only configure.ac: generate the scripts in the tree, as its
            # own autogen.sh would (needs autoconf, automake and libtool on PATH).
            steps.append(Step("configure", ("autoreconf", "-fi"), src))
        configure = (str(src / "configure"), f"--prefix={ctx.prefix}", *assignments(ctx), *ctx.args)
        return [
            *steps,
            Step("configure", configure, ctx.build_dir),
            Step("build", ("make", "-j", str(ctx.jobs)), ctx.build_dir),
            Step("install", ("make", "install", f"DESTDIR={ctx.stage_dir}"), ctx.build_dir),
        ]
