"""CMake: configure with the flags as cache entries, build, then ``cmake --install`` under DESTDIR.

``CMAKE_BUILD_TYPE=Release`` is kept because projects branch on it (some default to Debug, some add
``-g`` or sanitizers when it is empty), but CMake would append ``CMAKE_<LANG>_FLAGS_RELEASE``
(``-O3 -DNDEBUG``) after our flags and so override the recipe's optimisation level. We set those to
``-DNDEBUG`` alone (nothing for Fortran, which has no such macro by default): assertions off as in
any release build, as meson's ``b_ndebug=true`` does, and otherwise exactly the recipe's flags.

CMake has no CPPFLAGS, so the preprocessor flags go in front of the C and C++ flags.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pmpm.builders import BuildContext, Step


def _joined(*parts: str) -> str:
    return " ".join(p for p in parts if p)


class CMakeBuilder:
    name = "cmake"

    def supports(self, source_dir: Path) -> bool:
        return (source_dir / "CMakeLists.txt").is_file()

    def steps(self, ctx: BuildContext) -> list[Step]:
        f = ctx.flags
        # Ninja when the build environment has it: faster, and its own job server needs no -j glue.
        ninja = shutil.which("ninja", path=ctx.env.get("PATH", ""))
        generator = "Ninja" if ninja else "Unix Makefiles"
        lib = ctx.prefix / "lib"
        defines = {
            "CMAKE_INSTALL_PREFIX": str(ctx.prefix),
            "CMAKE_PREFIX_PATH": str(ctx.prefix),
            "CMAKE_INSTALL_LIBDIR": "lib",
            "CMAKE_INSTALL_RPATH": str(lib),
            # build-tree RPATHs relative ($ORIGIN): the linker's build id, computed before
            # install rewrites them, then does not name the build folder (reproducible builds)
            "CMAKE_BUILD_RPATH_USE_ORIGIN": "ON",
            "CMAKE_BUILD_TYPE": "Release",
            "CMAKE_EXPORT_COMPILE_COMMANDS": "ON",  # the exact compile lines, kept as a record
            "CMAKE_C_FLAGS": _joined(f.cppflags, f.cflags),
            "CMAKE_CXX_FLAGS": _joined(f.cppflags, f.cxxflags),
            "CMAKE_Fortran_FLAGS": f.fflags,
            "CMAKE_C_FLAGS_RELEASE": "-DNDEBUG",
            "CMAKE_CXX_FLAGS_RELEASE": "-DNDEBUG",
            "CMAKE_Fortran_FLAGS_RELEASE": "",
            "CMAKE_EXE_LINKER_FLAGS": f.ldflags,
            "CMAKE_SHARED_LINKER_FLAGS": f.ldflags,
            "CMAKE_MODULE_LINKER_FLAGS": f.ldflags,
        }
        configure = (
            "cmake",
            "-S",
            str(ctx.source_dir),
            "-B",
            str(ctx.build_dir),
            "-G",
            generator,
            *(f"-D{k}={v}" for k, v in defines.items()),
            *ctx.args,
        )
        build = ("cmake", "--build", str(ctx.build_dir), "-j", str(ctx.jobs))
        install = ("cmake", "--install", str(ctx.build_dir))
        return [
            Step("configure", configure, ctx.build_dir),
            Step("build", build, ctx.build_dir),
            Step("install", install, ctx.build_dir, env={"DESTDIR": str(ctx.stage_dir)}),
        ]
