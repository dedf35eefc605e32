"""Plain Makefile projects: no configure step, so prefix and flags go on make's command line.

Variables given on make's command line override the Makefile's own assignments, which is the only
reliable way to reach a hand-written Makefile; the same variables go to ``make install`` too, so
install never rebuilds with the Makefile's defaults. Such Makefiles rarely support out-of-tree
builds, so everything runs in the source tree.
"""

from __future__ import annotations

from pathlib import Path

from pmpm.builders import BuildContext, Flags, Step

MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
COMPILERS = ("CC", "CXX", "FC", "F77")


def flag_variables(flags: Flags, *, keep_empty: bool = False) -> dict[str, str]:
    """The conventional variable names; empty ones are left out so a build's defaults still apply."""
    values = {
        "CFLAGS": flags.cflags,
        "CXXFLAGS": flags.cxxflags,
        "FFLAGS": flags.fflags,
        "FCFLAGS": flags.fflags,
        "CPPFLAGS": flags.cppflags,
        "LDFLAGS": flags.ldflags,
    }
    return {k: v for k, v in values.items() if v or keep_empty}


def assignments(ctx: BuildContext) -> list[str]:
    """``VAR=value`` words for the compilers the environment names and the flags."""
    compilers = {k: ctx.env[k] for k in COMPILERS if ctx.env.get(k)}
    return [f"{k}={v}" for k, v in {**compilers, **flag_variables(ctx.flags)}.items()]


class MakeBuilder:
    name = "make"

    def supports(self, source_dir: Path) -> bool:
        return any((source_dir / m).is_file() for m in MAKEFILES)

    def steps(self, ctx: BuildContext) -> list[Step]:
        # Both spellings: GNU style uses ``prefix``, many hand-written Makefiles ``PREFIX``.
        common = [f"PREFIX={ctx.prefix}", f"prefix={ctx.prefix}", *assignments(ctx), *ctx.args]
        return [
            Step("build", ("make", "-j", str(ctx.jobs), *common), ctx.source_dir),
            Step("install", ("make", "install", *common, f"DESTDIR={ctx.stage_dir}"), ctx.source_dir),
        ]
