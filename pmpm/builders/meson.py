"""Meson: ``meson setup`` with the flags as option values, ``compile``, ``install --destdir``.

``--buildtype=plain`` makes meson add no optimisation or debug flags of its own, so exactly the
recipe's flags reach the compiler; ``b_ndebug=true`` keeps release semantics (assertions off), the
same choice the CMake builder makes. Meson has no CPPFLAGS option: the preprocessor flags go in
front of the C and C++ arguments. The option values on the command line win over the CFLAGS etc.
in the environment, which meson would otherwise also read.
"""

from __future__ import annotations

from pathlib import Path

from pmpm.builders import BuildContext, Step


def _joined(*parts: str) -> str:
    return " ".join(p for p in parts if p)


class MesonBuilder:
    name = "meson"

    def supports(self, source_dir: Path) -> bool:
        return (source_dir / "meson.build").is_file()

    def steps(self, ctx: BuildContext) -> list[Step]:
        f = ctx.flags
        options = {
            "c_args": _joined(f.cppflags, f.cflags),
            "cpp_args": _joined(f.cppflags, f.cxxflags),
            "fortran_args": f.fflags,
            "c_link_args": f.ldflags,
            "cpp_link_args": f.ldflags,
            "fortran_link_args": f.ldflags,
            "b_ndebug": "true",
        }
        setup = ["meson", "setup", str(ctx.build_dir), str(ctx.source_dir)]
        if (ctx.build_dir / "meson-private" / "coredata.dat").is_file():
            # The build folder is kept for incremental builds; a plain setup refuses a configured one.
            setup.append("--reconfigure")
        setup += [f"--prefix={ctx.prefix}", "--libdir=lib", "--buildtype=plain"]
        setup += [f"-D{k}={v}" for k, v in options.items()]
        build = ("meson", "compile", "-C", str(ctx.build_dir), "-j", str(ctx.jobs))
        install = ("meson", "install", "-C", str(ctx.build_dir), "--destdir", str(ctx.stage_dir))
        return [
            Step("configure", (*setup, *ctx.args), ctx.build_dir),
            Step("build", build, ctx.build_dir),
            Step("install", install, ctx.build_dir),
        ]
