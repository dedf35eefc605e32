"""Test projects for reproducibility, one per build system, each compiled with debug information
(``-g``: the build folders would show in it) and using ``__FILE__``/``__DATE__``; and clean
builds of an env file in folders of their own (``tests/build/test_reproducible.py``,
``benchmarks/reproducible.py``)."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

from tests.clihelp import Result, pmpm

LIB_C = """#include <assert.h>
const char *rc_where(void) { return __FILE__; }
int rc_check(int x) { assert(x > 0); return x; }
"""
TOOL_C = """#include <stdio.h>
const char *rc_where(void);
int rc_check(int x);
int main(void) { printf("%s %d %s\\n", rc_where(), rc_check(1), __DATE__); return 0; }
"""
MAIN_C = (
    '#include <stdio.h>\nint main(void) { printf("%s %s %s\\n", __FILE__, __DATE__, __TIME__); return 0; }\n'
)
CMAKELISTS = """cmake_minimum_required(VERSION 3.13)
project(rc C)
add_library(rc SHARED rc.c)
add_library(rcs STATIC rc.c)
add_executable(rc-tool tool.c)
target_link_libraries(rc-tool rc)
install(TARGETS rc rcs rc-tool)
# the flags the build saw, kept as FFTW's configure keeps them (``fftw-wisdom -V``)
file(WRITE ${CMAKE_BINARY_DIR}/rc-flags.txt "${CMAKE_C_FLAGS}\n")
install(FILES ${CMAKE_BINARY_DIR}/rc-flags.txt DESTINATION share)
"""
MAKEFILE_AM = "bin_PROGRAMS = ra\nra_SOURCES = ra.c\nAM_CFLAGS = -g\n"
CONFIGURE_AC = """AC_INIT([ra], [1.0])
AM_INIT_AUTOMAKE([foreign])
AC_PROG_CC
AC_CONFIG_FILES([Makefile])
AC_OUTPUT
"""
MAKEFILE = """PREFIX ?= /usr/local
all: rm-tool
rm-tool: rm.c
\t$(CC) $(CPPFLAGS) $(CFLAGS) -g -o rm-tool $(CURDIR)/rm.c $(LDFLAGS)
install: rm-tool
\tinstall -D -m 755 rm-tool $(DESTDIR)$(PREFIX)/bin/rm-tool
"""
SCRIPT = """    mkdir -p $STAGE_PREFIX/bin $STAGE_PREFIX/share
    $CC $CFLAGS -g -o $STAGE_PREFIX/bin/rs $SRC_DIR/rs.c $LDFLAGS
    date -u -d @$SOURCE_DATE_EPOCH +%F > $STAGE_PREFIX/share/rs-date.txt
    echo "{{ prefix }}" > $STAGE_PREFIX/share/rs-prefix.txt
"""
PY_EXT_C = """#include <Python.h>
static PyObject *where(PyObject *self, PyObject *args) { return PyUnicode_FromString(__FILE__); }
static PyMethodDef methods[] = {{"where", where, METH_NOARGS, "the source file"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "rpext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_rpext(void) { return PyModule_Create(&module); }
"""
PY_SETUP = (
    "from setuptools import Extension, setup\n"
    "setup(name='rp', version='1.0', packages=['rp'], ext_modules=[Extension('rpext', ['rpext.c'], "
    "extra_compile_args=['-g'])], entry_points={'console_scripts': ['rp-where = rp:main']})\n"
)
PY_MODULE = "import rpext\n\ndef main():\n    print(rpext.where())\n"
#: one package per build system
PACKAGES = ("rc", "ra", "rm", "rs")
#: the source tarball's members are dated here: the packages' timestamp must be this
TARBALL_TIME = 1_700_000_000


def _tarball(path: Path, files: dict[str, str]) -> str:
    """A genuine .tar.gz of ``files`` under ``rc-1.0/``, the newest member dated TARBALL_TIME; sha256."""
    with tarfile.open(path, "w:gz") as tar:
        for age, (name, text) in enumerate(files.items()):
            data = text.encode()
            item = tarfile.TarInfo(f"rc-1.0/{name}")
            item.size, item.mtime, item.mode = len(data), TARBALL_TIME - 3600 * age, 0o644
            tar.addfile(item, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_projects(root: Path) -> Path:
    """The four projects and their recipes under ``root``; the env file that builds them all."""
    src = root / "src"
    for name, files in {
        "ra": {"configure.ac": CONFIGURE_AC, "Makefile.am": MAKEFILE_AM, "ra.c": MAIN_C},
        "rm": {"Makefile": MAKEFILE, "rm.c": MAIN_C},
        "rs": {"rs.c": MAIN_C},
    }.items():  # fmt: skip
        (src / name).mkdir(parents=True)
        for file, text in files.items():
            (src / name / file).write_text(text)
    sha = _tarball(root / "rc-1.0.tar.gz", {"CMakeLists.txt": CMAKELISTS, "rc.c": LIB_C, "tool.c": TOOL_C})
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "rc.yaml").write_text(
        f"name: rc\nversion: '1.0'\nsource:\n  url: {(root / 'rc-1.0.tar.gz').as_uri()}\n  sha256: {sha}\n"
        "build:\n  system: cmake\n  args: [-DCMAKE_BUILD_TYPE=RelWithDebInfo]\n"
    )
    local = "name: {0}\nversion: '1.0'\nsource: {{path: ../src/{0}}}\nbuild:\n  system: {1}\n"
    (recipes / "ra.yaml").write_text(local.format("ra", "autotools"))
    (recipes / "rm.yaml").write_text(local.format("rm", "make"))
    (recipes / "rs.yaml").write_text(local.format("rs", "script") + f"  script: |\n{SCRIPT}")
    env = root / "env.yml"
    env.write_text(f"dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages: [{', '.join(PACKAGES)}]\n")
    return env


def write_python_project(root: Path, channel: str) -> Path:
    """A C-extension Python project (setuptools, a console script) with its recipe under
    ``root``; the env file that builds it for the ``python`` of ``channel``."""
    src = root / "src" / "rp"
    (src / "rp").mkdir(parents=True)
    (src / "setup.py").write_text(PY_SETUP)
    (src / "rpext.c").write_text(PY_EXT_C)
    (src / "rp" / "__init__.py").write_text(PY_MODULE)
    (root / "recipes").mkdir()
    (root / "recipes" / "rp.yaml").write_text(
        "name: rp\nversion: '1.0'\nsource: {path: ../src/rp}\nrequires: {conda: [python]}\n"
        "build: {system: python}\n"
    )
    env = root / "env.yml"
    env.write_text(
        f"channels: [{channel}]\ndependencies: [python]\n_pmpm:\n  recipes: [recipes]\n  packages: [rp]\n"
    )
    return env


def clean_build(
    env: Path, run: Path, prefix_name: str = "p", extra: dict[str, str] | None = None, *args: str
) -> tuple[Result, dict[str, str]]:
    """``conda_install`` of ``env`` with a HOME and a pmpm cache of its own (under ``run``);
    the result and the sha256 of every package in that cache's build channel, by file name."""
    home, cache = run / "home", run / "cache"
    home.mkdir(parents=True)
    own = {"HOME": str(home), "PMPM_CACHE_DIR": str(cache), **(extra or {})}
    result = pmpm("conda_install", run / prefix_name, "--file", env, *args, env=own, timeout=3600)
    packages = (cache / "channel").glob("*/*.conda")
    built = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in packages}
    return result, built
