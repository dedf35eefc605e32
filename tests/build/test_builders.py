"""Builders: the plan each produces, and real builds of real projects with the host's compilers.

The real builds run each step exactly as the executor will (argument list, ``cwd``, the context's
environment plus the step's own) and then check two promises: everything lands under
``stage/<prefix>`` and nothing in the prefix itself, and the recipe's flags are what the compiler
saw. ``-frecord-gcc-switches`` keeps the code-generation options (``-march``, ``-O``) in
``.GCC.command.line`` of every object; it leaves out ``-D``, so the CPPFLAGS marker is checked in
the build system's own record (config.log, compile_commands.json) or by code that needs it.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import venv
from pathlib import Path

import pytest

from pmpm.builders import BuildContext, Flags, Step, registry
from pmpm.builders.autotools import AutotoolsBuilder
from pmpm.builders.cmake import CMakeBuilder
from pmpm.builders.make import MakeBuilder
from pmpm.builders.meson import MesonBuilder
from pmpm.builders.python import PythonBuilder
from pmpm.builders.script import ScriptBuilder
from pmpm.errors import PmpmError
from tests.debian_sources import (
    AptSource,
    DebianSourceUnavailable,
    fetch_debian_orig,
    parse_deb822,
    parse_one_line,
)

X86 = platform.machine() in ("x86_64", "AMD64")
MARCH = "-march=x86-64-v2" if X86 else ""
MARKER = "-DPMPM_FLAGS_REACHED=1"  # a CPPFLAGS-only define: proves the preprocessor flags arrive too
FLAGS = Flags(
    cflags=f"-O2 {MARCH} -frecord-gcc-switches".replace("  ", " "),
    cxxflags=f"-O2 {MARCH} -frecord-gcc-switches".replace("  ", " "),
    fflags="-O2 -frecord-gcc-switches",
    ldflags="-Wl,-O1",
    cppflags=MARKER,
)
TOOLS_BIN = Path(sys.executable).parent  # meson and ninja come from the test venv (PyPI)
JOBS = max(2, min(4, os.cpu_count() or 2))

needs_gcc = pytest.mark.skipif(
    not (shutil.which("gcc") and shutil.which("readelf")), reason="needs gcc and readelf"
)


# -- helpers ---------------------------------------------------------------------------------------


def make_ctx(
    tmp_path: Path,
    source_dir: Path,
    *,
    prefix: Path | None = None,
    args: tuple[str, ...] = (),
    python: Path | None = None,
    script: str | None = None,
    path: str | None = None,
) -> BuildContext:
    env = {k: v for k, v in os.environ.items() if k not in ("CFLAGS", "CXXFLAGS", "LDFLAGS", "MAKEFLAGS")}
    env.update(
        PATH=path if path is not None else f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        CC="gcc",
        CXX="g++",
        CFLAGS=FLAGS.cflags,
        CXXFLAGS=FLAGS.cxxflags,
        FFLAGS=FLAGS.fflags,
        FCFLAGS=FLAGS.fflags,
        CPPFLAGS=FLAGS.cppflags,
        LDFLAGS=FLAGS.ldflags,
    )
    return BuildContext(
        name=source_dir.name,
        version="0",
        source_dir=source_dir,
        build_dir=tmp_path / "build",
        stage_dir=tmp_path / "stage",
        prefix=prefix or tmp_path / "opt" / "env",
        jobs=JOBS,
        flags=FLAGS,
        env=env,
        args=args,
        python=python,
        script=script,
    )


def run_steps(ctx: BuildContext, steps: list[Step], *, check: bool = True) -> int:
    """The executor's contract in miniature; returns the first failing exit status (0 if none)."""
    ctx.build_dir.mkdir(parents=True, exist_ok=True)
    for step in steps:
        # shell: only a recipe's script step, run the way the executor runs it
        argv = ["bash", "-e", "-c", *step.argv] if step.shell else list(step.argv)
        proc = subprocess.run(
            argv,
            cwd=step.cwd,
            env={**ctx.env, **step.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        if proc.returncode != 0:
            if check:
                tail = "\n".join(proc.stdout.splitlines()[-40:])
                pytest.fail(f"step {step.name} {argv[:3]} failed ({proc.returncode}):\n{tail}")
            return proc.returncode
    return 0


def assert_staged_only(ctx: BuildContext) -> None:
    assert not ctx.prefix.exists(), "a build step wrote into the live prefix"
    staged = ctx.staged_prefix
    strays = [
        p for p in ctx.stage_dir.rglob("*") if not (p == staged or staged in p.parents or p in staged.parents)
    ]
    assert strays == [], f"files staged outside stage/<prefix>: {strays[:5]}"


def recorded_switches(binary: Path) -> str:
    out = subprocess.run(
        ["readelf", "-p", ".GCC.command.line", str(binary)], capture_output=True, text=True, check=True
    ).stdout
    assert "GNU C" in out, f"{binary.name} has no recorded command line"
    return out


def assert_our_flags(binary: Path) -> str:
    switches = recorded_switches(binary)
    assert "-O2" in switches
    if X86:
        assert "-march=x86-64-v2" in switches
    return switches


def assert_compile_commands(build_dir: Path) -> None:
    """Every C compile line carries the CPPFLAGS marker, and the build type added no -O3."""
    commands = json.loads((build_dir / "compile_commands.json").read_text())
    lines = [c.get("command") or " ".join(c["arguments"]) for c in commands if c["file"].endswith(".c")]
    assert lines and all(MARKER in line and "-O3" not in line for line in lines)


def unpack(archive: Path, dest: Path) -> Path:
    """The single top folder of a source archive, as the executor's fetch stage would leave it."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.10.12 / 3.11.4: trusted archives from Debian and PyPI only
            tar.extractall(dest)
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    return top


def debian_tree(package: str, tmp_path: Path) -> Path:
    try:
        orig = fetch_debian_orig(package, tmp_path / "downloads")
    except DebianSourceUnavailable as exc:
        pytest.skip(f"Debian source {package}: {exc}")
    return unpack(orig, tmp_path / "src")


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# -- registry and detection ------------------------------------------------------------------------

BUILTINS = {"autotools", "cmake", "meson", "python", "make", "script"}


def test_builtins_are_registered_through_entry_points():
    table = registry.builders()
    assert set(table) >= BUILTINS
    for name in BUILTINS:
        assert table[name].name == name
        assert registry.get(name) is table[name]


def test_unknown_builder_names_the_available_ones():
    with pytest.raises(PmpmError) as err:
        registry.get("scons", where="recipes/foo.yaml:3")
    text = str(err.value)
    assert "scons" in text and "recipes/foo.yaml:3" in text
    assert all(name in text for name in BUILTINS)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["configure", "Makefile.in"], "autotools"),
        (["configure.ac", "Makefile.am"], "autotools"),
        (["CMakeLists.txt", "Makefile", "configure"], "cmake"),
        (["meson.build", "CMakeLists.txt", "configure"], "meson"),
        (["setup.py", "Makefile"], "python"),
        (["pyproject.toml:[build-system]\nrequires = []", "meson.build"], "python"),
        (["pyproject.toml:[tool.ruff]\nline-length = 99", "CMakeLists.txt"], "cmake"),
        (["Makefile"], "make"),
    ],
)
def test_detect_prefers_the_generator_over_its_by_products(tmp_path, files, expected):
    for spec in files:
        name, _, text = spec.partition(":")
        (tmp_path / name).write_text(text)
    assert registry.detect(tmp_path).name == expected


def test_detect_fails_with_a_hint(tmp_path):
    (tmp_path / "README").write_text("no build system")
    with pytest.raises(PmpmError, match="cannot tell which build system") as err:
        registry.detect(tmp_path)
    assert "script" in str(err.value)


# -- plans (no compiler needed) --------------------------------------------------------------------


def test_cmake_plan_applies_exactly_our_flags(tmp_path):
    ctx = make_ctx(tmp_path, tmp_path / "src", path="/nonexistent")
    configure, build, install = CMakeBuilder().steps(ctx)
    argv = configure.argv
    assert argv[argv.index("-G") + 1] == "Unix Makefiles"  # no ninja on this PATH
    assert f"-DCMAKE_C_FLAGS={MARKER} {FLAGS.cflags}" in argv
    assert "-DCMAKE_C_FLAGS_RELEASE=-DNDEBUG" in argv
    assert f"-DCMAKE_SHARED_LINKER_FLAGS={FLAGS.ldflags}" in argv
    assert f"-DCMAKE_INSTALL_RPATH={ctx.prefix}/lib" in argv
    assert build.argv[-2:] == ("-j", str(JOBS))
    assert install.env == {"DESTDIR": str(ctx.stage_dir)}


def test_autotools_bootstraps_only_without_configure(tmp_path):
    src = write_tree(tmp_path / "src", {"configure.ac": "", "Makefile.am": ""})
    names = [s.argv[0] for s in AutotoolsBuilder().steps(make_ctx(tmp_path, src))]
    assert names[0] == "autoreconf"
    (src / "configure").write_text("#!/bin/sh\n")
    steps = AutotoolsBuilder().steps(make_ctx(tmp_path, src, args=("--disable-nls",)))
    assert [s.name for s in steps] == ["configure", "build", "install"]
    assert steps[0].argv[-1] == "--disable-nls"
    assert f"CFLAGS={FLAGS.cflags}" in steps[0].argv


def test_meson_reconfigures_a_kept_build_folder(tmp_path):
    ctx = make_ctx(tmp_path, tmp_path / "src")
    assert "--reconfigure" not in MesonBuilder().steps(ctx)[0].argv
    (ctx.build_dir / "meson-private").mkdir(parents=True)
    (ctx.build_dir / "meson-private" / "coredata.dat").write_bytes(b"")
    assert "--reconfigure" in MesonBuilder().steps(ctx)[0].argv


def test_python_defaults_to_the_prefix_interpreter(tmp_path):
    ctx = make_ctx(tmp_path, tmp_path / "src", args=("--no-build-isolation",))
    wheel, install = PythonBuilder().steps(ctx)
    assert wheel.argv[0] == str(ctx.prefix / "bin" / "python")
    assert wheel.argv[-2:] == ("--no-build-isolation", str(ctx.source_dir))
    assert {"--root", str(ctx.stage_dir), "--prefix", str(ctx.prefix)} <= set(install.argv)


def test_script_builder_needs_a_script(tmp_path):
    assert not ScriptBuilder().supports(tmp_path)
    with pytest.raises(PmpmError, match="needs a script"):
        ScriptBuilder().steps(make_ctx(tmp_path, tmp_path, script="  \n"))


# -- Debian source lists (parsing only: the tests never touch the system's apt files) -------------


def test_apt_sources_become_deb_src_lines():
    one_line = parse_one_line(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n"
        "deb-src http://mirror.example/debian bookworm main\nrpm http://x y z\n"
    )
    assert one_line[0] == AptSource(
        "http://mirror.example/debian", "bookworm", ("main", "contrib"), ("arch=amd64", "signed-by=/k.gpg")
    )
    assert one_line[0].deb_src_line() == (
        "deb-src [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib"
    )
    assert len(one_line) == 2
    deb822 = parse_deb822(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/k.gpg\n\n"
        "Types: deb\nURIs: http://other.example/x\nSuites: s\nComponents: c\nEnabled: no\n"
    )
    assert [s.suite for s in deb822] == ["bookworm", "bookworm-updates"]
    assert deb822[0].options == ("signed-by=/usr/share/keyrings/k.gpg",)


# -- real builds ---------------------------------------------------------------------------------


@needs_gcc
@pytest.mark.slow
def test_autotools_builds_gnu_hello(tmp_path):
    src = debian_tree("hello", tmp_path)
    ctx = make_ctx(tmp_path, src, args=("--disable-nls",))
    run_steps(ctx, AutotoolsBuilder().steps(ctx))

    assert_staged_only(ctx)
    hello = ctx.staged_prefix / "bin" / "hello"
    out = subprocess.run([str(hello)], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "Hello, world!"
    assert (ctx.staged_prefix / "share" / "man" / "man1" / "hello.1").is_file()
    assert_our_flags(hello)
    invocation = next(
        line for line in (ctx.build_dir / "config.log").read_text().splitlines() if "$ " in line
    )
    assert f"CFLAGS={FLAGS.cflags}" in invocation and f"CPPFLAGS={MARKER}" in invocation


@needs_gcc
@pytest.mark.skipif(not shutil.which("autoreconf"), reason="needs autoconf, automake (apt)")
def test_autotools_bootstraps_a_configure_ac_tree(tmp_path):
    src = write_tree(
        tmp_path / "src",
        {
            "configure.ac": "AC_INIT([greet], [1.0])\nAM_INIT_AUTOMAKE([foreign])\nAC_PROG_CC\n"
            "AC_CONFIG_FILES([Makefile])\nAC_OUTPUT\n",
            "Makefile.am": "bin_PROGRAMS = greet\ngreet_SOURCES = greet.c\n",
            "greet.c": '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n',
        },
    )
    ctx = make_ctx(tmp_path, src)
    run_steps(ctx, AutotoolsBuilder().steps(ctx))
    assert_staged_only(ctx)
    assert_our_flags(ctx.staged_prefix / "bin" / "greet")


@needs_gcc
@pytest.mark.skipif(not shutil.which("cmake"), reason="needs cmake")
def test_cmake_builds_cjson(tmp_path):
    src = debian_tree("cjson", tmp_path)
    # The policy floor lets CMake >= 4 configure a project that still asks for CMake 2.8.
    ctx = make_ctx(tmp_path, src, args=("-DENABLE_CJSON_TEST=OFF", "-DCMAKE_POLICY_VERSION_MINIMUM=3.5"))
    run_steps(ctx, CMakeBuilder().steps(ctx))

    assert_staged_only(ctx)
    if shutil.which("ninja", path=ctx.env["PATH"]):
        assert (ctx.build_dir / "build.ninja").is_file()
    lib = ctx.staged_prefix / "lib" / "libcjson.so"
    assert (ctx.staged_prefix / "include" / "cjson" / "cJSON.h").is_file()
    switches = assert_our_flags(lib.resolve())
    assert "-O3" not in switches  # Release, but our optimisation level
    assert_compile_commands(ctx.build_dir)
    dynamic = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True).stdout
    assert f"[{ctx.prefix}/lib]" in dynamic  # RUNPATH of the final location, not the build tree
    pc = (ctx.staged_prefix / "lib" / "pkgconfig" / "libcjson.pc").read_text()
    assert f"{ctx.prefix}/lib" in pc and str(ctx.stage_dir) not in pc


@needs_gcc
@pytest.mark.skipif(
    not shutil.which("meson", path=f"{TOOLS_BIN}{os.pathsep}{os.environ.get('PATH', '')}"),
    reason="needs meson (pip install meson ninja)",
)
def test_meson_builds_serd(tmp_path):
    src = debian_tree("serd", tmp_path)
    ctx = make_ctx(tmp_path, src, args=("-Ddocs=disabled", "-Dtests=disabled"))
    run_steps(ctx, MesonBuilder().steps(ctx))

    assert_staged_only(ctx)
    lib = ctx.staged_prefix / "lib" / "libserd-0.so"
    switches = assert_our_flags(lib.resolve())
    assert "-O3" not in switches
    assert_compile_commands(ctx.build_dir)
    serdi = ctx.staged_prefix / "bin" / "serdi"
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib.parent)}
    ran = subprocess.run([str(serdi), "-v"], capture_output=True, text=True, env=env)
    assert "0.30" in ran.stdout + ran.stderr
    assert "prefix=" + str(ctx.prefix) in (ctx.staged_prefix / "lib" / "pkgconfig" / "serd-0.pc").read_text()


@pytest.fixture(scope="module")
def venv_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway venv standing in for an environment prefix with its own python."""
    prefix = tmp_path_factory.mktemp("pyprefix") / "env"
    venv.EnvBuilder(with_pip=True).create(prefix)
    return prefix


def tree_snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def site_packages(ctx: BuildContext) -> Path:
    tag = subprocess.run(
        [str(ctx.python), "-c", "import sys; print('python%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return ctx.staged_prefix / "lib" / tag / "site-packages"


def assert_python_staged(ctx: BuildContext, before: set[str]) -> None:
    assert tree_snapshot(ctx.prefix) == before, "pip wrote into the live prefix"
    staged = ctx.staged_prefix
    assert all(p == staged or staged in p.parents or p in staged.parents for p in ctx.stage_dir.rglob("*"))
    assert not list(ctx.stage_dir.rglob("direct_url.json"))  # installed by name, not from a build path
    assert not list(ctx.stage_dir.rglob("*.pyc"))


@needs_gcc
@pytest.mark.slow
def test_python_builds_markupsafe_sdist_with_its_c_extension(tmp_path, venv_prefix):
    downloads = tmp_path / "downloads"
    pip_download = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    got = subprocess.run(
        [*pip_download, "-d", str(downloads), "markupsafe==3.0.2"],
        capture_output=True,
        text=True,
    )
    if got.returncode != 0:
        pytest.skip(f"cannot download the markupsafe sdist: {got.stderr.strip()[-300:]}")
    (sdist,) = downloads.glob("*.tar.gz")
    src = unpack(sdist, tmp_path / "src")
    ctx = make_ctx(tmp_path, src, prefix=venv_prefix, python=venv_prefix / "bin" / "python")
    before = tree_snapshot(venv_prefix)
    run_steps(ctx, PythonBuilder().steps(ctx))

    assert_python_staged(ctx, before)
    site = site_packages(ctx)
    assert (site / "markupsafe" / "__init__.py").is_file()
    assert (site / "markupsafe-3.0.2.dist-info" / "RECORD").is_file()
    (speedups,) = (site / "markupsafe").glob("_speedups*.so")
    assert_our_flags(speedups)
    check = "import markupsafe._speedups as s; print(s.__file__)"
    env = {**os.environ, "PYTHONPATH": str(site)}
    ran = subprocess.run([str(ctx.python), "-c", check], capture_output=True, text=True, env=env, check=True)
    assert ran.stdout.strip() == str(speedups)


def test_python_stages_console_scripts_for_the_final_prefix(tmp_path, venv_prefix):
    src = write_tree(
        tmp_path / "greet",
        {
            "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\n'
            'build-backend = "setuptools.build_meta"\n\n'
            '[project]\nname = "pmpm-greet"\nversion = "1.2"\n\n'
            '[project.scripts]\npmpm-greet = "pmpm_greet:main"\n',
            "pmpm_greet.py": "def main():\n    print('greetings')\n",
        },
    )
    ctx = make_ctx(tmp_path, src, prefix=venv_prefix, python=venv_prefix / "bin" / "python")
    before = tree_snapshot(venv_prefix)
    run_steps(ctx, PythonBuilder().steps(ctx))

    assert_python_staged(ctx, before)
    assert (site_packages(ctx) / "pmpm_greet.py").is_file()
    script = ctx.staged_prefix / "bin" / "pmpm-greet"
    assert script.read_text().splitlines()[0] == f"#!{venv_prefix}/bin/python"


MAKEFILE = """\
PREFIX ?= /usr/local
CC ?= cc
CFLAGS ?= -O0
all: tool
tool: tool.c
\t$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $<
install: tool
\tinstall -D -m 755 tool $(DESTDIR)$(PREFIX)/bin/tool
"""


@needs_gcc
def test_make_builds_a_plain_makefile_project(tmp_path):
    src = write_tree(
        tmp_path / "tool",
        {"Makefile": MAKEFILE, "tool.c": "int main(void) { return PMPM_FLAGS_REACHED - 1; }\n"},
    )
    ctx = make_ctx(tmp_path, src)
    run_steps(ctx, MakeBuilder().steps(ctx))

    assert_staged_only(ctx)
    tool = ctx.staged_prefix / "bin" / "tool"
    subprocess.run([str(tool)], check=True)
    assert_our_flags(tool)


HI_C = """\
#include <stdio.h>
#ifndef PMPM_FLAGS_REACHED
#error CPPFLAGS did not reach the compiler
#endif
int main(void) { puts("hi"); return 0; }
"""
SCRIPT = """\
mkdir -p "$STAGE_PREFIX/bin" "$STAGE_PREFIX/share"
$CC $CPPFLAGS $CFLAGS $LDFLAGS -o "$STAGE_PREFIX/bin/hi" "$SRC_DIR/hi.c"
printf '%s\\n' "$PREFIX" "$DESTDIR" "$BUILD_DIR" "$JOBS" "$CPU_COUNT" > "$STAGE_PREFIX/share/hi.env"
"""


@needs_gcc
def test_script_compiles_into_the_staged_prefix(tmp_path):
    src = write_tree(tmp_path / "hi", {"hi.c": HI_C})
    ctx = make_ctx(tmp_path, src, script=SCRIPT)
    run_steps(ctx, ScriptBuilder().steps(ctx))

    assert_staged_only(ctx)
    hi = ctx.staged_prefix / "bin" / "hi"
    assert subprocess.run([str(hi)], capture_output=True, text=True, check=True).stdout == "hi\n"
    assert_our_flags(hi)
    recorded = (ctx.staged_prefix / "share" / "hi.env").read_text().split()
    assert recorded == [str(ctx.prefix), str(ctx.stage_dir), str(ctx.build_dir), str(JOBS), str(JOBS)]


def test_script_stops_at_the_first_failing_command(tmp_path):
    ctx = make_ctx(tmp_path, tmp_path, script='false\ntouch "$BUILD_DIR/after"\n')
    assert run_steps(ctx, ScriptBuilder().steps(ctx), check=False) != 0
    assert not (ctx.build_dir / "after").exists()
