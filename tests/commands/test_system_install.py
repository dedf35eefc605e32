"""``pmpm system_install``: a compiled stack in its own prefix beside a conda stack (or none)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pmpm.env.layout import find
from tests.clihelp import installed, pmpm, tree_digest

DEMO_C = (
    "#include <stdio.h>\n#include <demo.h>\n"
    'int main(void) { printf("uses libdemo %s\\n", demo_version()); return 0; }\n'
)
GREET_MAKEFILE = """\
greet: greet.c
\t$(CC) $(CFLAGS) -o $@ greet.c $(LDFLAGS)
install: greet
\tmkdir -p $(DESTDIR)$(PREFIX)/bin
\tcp greet $(DESTDIR)$(PREFIX)/bin/
"""
EXT_C = """\
#include <Python.h>
static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}
static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "fastadd", NULL, -1, methods};
PyMODINIT_FUNC PyInit_fastadd(void) { return PyModule_Create(&module); }
"""
SETUP_PY = (
    "from setuptools import Extension, setup\n"
    "setup(name='fastadd', version='1.0', ext_modules=[Extension('fastadd', ['fastadd.c'])])\n"
)


@pytest.fixture
def project(tmp_path: Path, demo_channel):
    """Recipes for local trees: ``usedemo`` links the conda stack's libdemo, ``greet`` needs
    nothing, ``fastadd`` is a C extension for the conda stack's python. Returns a function that
    writes the env file with the given packages and extra ``_pmpm`` lines."""
    src = tmp_path / "src"
    for name, files in {
        "usedemo": {"usedemo.c": DEMO_C},
        "greet": {"greet.c": '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n',
                  "Makefile": GREET_MAKEFILE},
        "fastadd": {"fastadd.c": EXT_C, "setup.py": SETUP_PY},
    }.items():  # fmt: skip
        (src / name).mkdir(parents=True)
        for file, text in files.items():
            (src / name / file).write_text(text)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "usedemo.yaml").write_text(
        "name: usedemo\nversion: '1.0'\nsource: {path: ../src/usedemo}\n"
        "requires: {conda: [libdemo]}\n"
        "build:\n  system: script\n  script: |\n"
        "    mkdir -p $STAGE_PREFIX/bin\n"
        "    $CC $CFLAGS $CPPFLAGS -o $STAGE_PREFIX/bin/usedemo $SRC_DIR/usedemo.c $LDFLAGS -ldemo\n"
        "test: {commands: [usedemo]}\n"
    )
    (recipes / "greet.yaml").write_text(
        "name: greet\nversion: '1.0'\nsource: {path: ../src/greet}\nbuild: {system: make}\n"
    )
    (recipes / "fastadd.yaml").write_text(
        "name: fastadd\nversion: '1.0'\nsource: {path: ../src/fastadd}\n"
        "requires: {conda: [python]}\nbuild: {system: python}\n"
        "test: {commands: ['python -c \"import fastadd; assert fastadd.add(2, 3) == 5\"']}\n"
    )

    def write(packages: list[str], extra: str = "", deps: tuple[str, ...] = ("libdemo",)) -> Path:
        env = tmp_path / "env.yml"
        env.write_text(
            f"channels: [{demo_channel.path}]\n"
            "dependencies:\n" + "".join(f"  - {d}\n" for d in deps) + "_pmpm:\n  recipes: [recipes]\n"
            f"  packages: [{', '.join(packages)}]\n" + extra
        )
        return env

    return write


def _builds(stack: Path, name: str) -> dict:
    return json.loads((stack / "conda-meta" / "pmpm" / "builds" / f"{name}.json").read_text())


def test_compiled_stack_beside_the_conda_stack(tmp_path: Path, project) -> None:
    env = project(["usedemo", "greet"])
    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", env)
    assert result.code == 0, result.text
    conda, compiled = installed(root / "conda"), installed(root / "compile")
    assert set(conda) == {"libdemo"}  # the recipe's conda requirement joined the conda stack
    assert set(compiled) == {"usedemo", "greet"}
    assert all(v.startswith("1.0-pmpm_") for v in compiled.values())
    # linked against the conda stack's library, found at run time with no environment set up
    done = subprocess.run(
        [root / "compile" / "bin" / "usedemo"], capture_output=True, text=True, env={}, check=True
    )
    assert done.stdout == "uses libdemo 2.0\n"
    # built with the host's compiler, which the record names
    cc = _builds(root / "compile", "usedemo")["compilers"]["cc"]
    assert cc.startswith("gcc ") and str(root) not in cc
    assert _builds(root / "compile", "usedemo")["conda"] == {"libdemo": "2.0-0"}
    layout = find(root)
    assert (layout.kind, layout.conda, layout.compile) == ("system", root / "conda", root / "compile")
    assert find(root / "conda") == layout and find(root / "compile") == layout

    again = pmpm("system_install", root, "--file", env)
    assert again.code == 0 and "is up to date with" in again.out, again.text  # a stat per file: no plan


def test_python_package_is_built_for_the_conda_stacks_python(tmp_path: Path, project) -> None:
    env = project(["fastadd"], deps=("python",))
    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", env, timeout=600)
    if result.code != 0 and "setuptools" in result.text and "connection" in result.text.lower():
        pytest.skip(f"PyPI unreachable for the build requirements: {result.text[-300:]}")
    assert result.code == 0, result.text
    site = list((root / "compile" / "lib").glob("python3*/site-packages"))
    assert len(site) == 1 and list(site[0].glob("fastadd*.so"))
    assert not list((root / "conda" / "lib").glob("python3*/site-packages/fastadd*"))
    done = subprocess.run(
        [root / "conda" / "bin" / "python", "-c", "import fastadd; print(fastadd.add(40, 2))"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site[0])},
        check=True,
    )
    assert done.stdout == "42\n"
    # the interpreter is part of the build key even though the recipe never names it
    python = _builds(root / "compile", "fastadd")["python"]
    assert python.startswith(os.path.realpath(root / "conda" / "bin" / "python") + " 3.")


def test_without_a_conda_stack(tmp_path: Path, project) -> None:
    env = project(["greet"], extra="  conda: false\n", deps=())
    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", env)
    assert result.code == 0, result.text
    assert sorted(p.name for p in root.iterdir()) == [".pmpm", "compile"]
    assert (
        subprocess.run([root / "compile" / "bin" / "greet"], capture_output=True, text=True).stdout == "hi\n"
    )
    assert find(root).conda is None


def test_conda_stack_elsewhere_and_custom_names(tmp_path: Path, project) -> None:
    env = project(["greet"], extra="  compile_prefix_name: build\n")
    root, conda = tmp_path / "stack", tmp_path / "envs" / "base"
    result = pmpm("system_install", root, "--file", env, "--conda-prefix", conda)
    assert result.code == 0, result.text
    assert sorted(p.name for p in root.iterdir()) == [".pmpm", "build"]
    assert "libdemo" in installed(conda) and "greet" in installed(root / "build")
    assert find(conda).root == root  # the conda stack's python can find its way back to the record

    env2 = project(["greet"], extra="  conda_prefix_name: c\n  compile_prefix_name: b\n")
    root2 = tmp_path / "stack2"
    assert pmpm("system_install", root2, "--file", env2).code == 0
    assert sorted(p.name for p in root2.iterdir()) == [".pmpm", "b", "c"]


@pytest.mark.parametrize(
    ("extra", "args", "message"),
    [
        ("  conda_prefix_name: same\n  compile_prefix_name: same\n", (), "both 'same'"),
        ("  conda: false\n", ("--conda-prefix", "elsewhere"), "--conda-prefix was given"),
        ("  compile_prefix_name: ../up\n", (), "must be a plain folder name"),
        ("  conda: false\n  mpi: conda\n", (), "`mpi: conda` but there is no conda stack"),
    ],
)
def test_bad_layouts_are_refused_and_change_nothing(tmp_path: Path, project, extra, args, message) -> None:
    env = project(["greet"], extra=extra)
    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", env, *args)
    assert result.code != 0 and message in result.err, result.text
    assert "Traceback" not in result.text
    assert not root.exists()


def test_a_foreign_folder_is_not_taken_over(tmp_path: Path, project) -> None:
    env = project(["greet"])
    root = tmp_path / "data"
    root.mkdir()
    (root / "results.csv").write_text("1,2\n")
    before = tree_digest(root)
    result = pmpm("system_install", root, "--file", env)
    assert result.code == 1 and "not a pmpm system_install" in result.err and "results.csv" in result.err
    assert tree_digest(root) == before


def test_pip_entries_need_the_conda_stack(tmp_path: Path, project) -> None:
    env = project(["greet"], extra="  conda: false\n", deps=("pip: [six]",))
    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", env)
    assert result.code == 1 and "pip: entries need the conda stack's python" in result.err, result.text
    assert f"{env}:" in result.err  # names the line


def test_a_failed_build_leaves_both_stacks_as_they_were(tmp_path: Path, project) -> None:
    env = project(["usedemo", "greet"])
    root = tmp_path / "stack"
    assert pmpm("system_install", root, "--file", env).code == 0
    before = tree_digest(root)
    (tmp_path / "src" / "greet" / "greet.c").write_text("this is not C\n")
    result = pmpm("system_install", root, "--file", env)
    assert result.code == 1 and "building greet failed" in result.err and "log" in result.err
    assert "Traceback" not in result.text
    assert tree_digest(root) == before


# -- compilers ------------------------------------------------------------------------------------


@pytest.fixture
def conda_gcc(tmp_path: Path, channel_factory):
    """A genuine conda package shaped like conda-forge's ``gcc_linux-64``: a triplet-named driver
    in ``bin``. Its driver runs the host's gcc (conda-forge's compilers cannot be fetched here)."""
    from pmpm.build.package import PackageMeta

    gcc = shutil.which("gcc")
    assert gcc is not None
    channel = channel_factory("compilers")
    script = f'#!/bin/sh\nexec {os.path.realpath(gcc)} "$@"\n'
    channel.add(PackageMeta("gcc_linux-64", "12.2.0", "0"), {"bin/x86_64-conda-linux-gnu-cc": script})
    channel.index()
    return channel


def test_conda_install_uses_the_envs_own_compiler_and_system_install_the_hosts(
    tmp_path: Path, project, conda_gcc
) -> None:
    env = project(["greet"], deps=("libdemo", "gcc_linux-64"))
    env.write_text(env.read_text().replace("channels: [", f"channels: [{conda_gcc.path}, "))
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    cc = _builds(prefix, "greet")["compilers"]["cc"]
    # recorded with PREFIX as a placeholder: the package is relocatable, its key the same anywhere
    assert cc.startswith("gcc ") and "${prefix}/bin/x86_64-conda-linux-gnu-cc" in cc
    shown = pmpm("host", "--prefix", prefix)
    assert shown.code == 0, shown.text
    assert f"{prefix}/bin/x86_64-conda-linux-gnu-cc" in shown.out
    assert "cc: conda's, in PREFIX/bin (system_install uses the host's instead)" in shown.out

    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", env)
    assert result.code == 0, result.text
    assert (root / "conda" / "bin" / "x86_64-conda-linux-gnu-cc").exists()
    cc = _builds(root / "compile", "greet")["compilers"]["cc"]
    assert cc.startswith("gcc ") and "conda-linux-gnu" not in cc


def test_each_target_stack_builds_with_the_envs_own_compiler_too(tmp_path: Path, project, conda_gcc) -> None:
    """With several targets the compiled stacks are PREFIX/compile/T, but conda's compiler stays in
    PREFIX/bin: each target's build takes it, as one PREFIX does, with the same key as one target."""
    from tests.pipeline.test_targets import _two_targets

    a, b = _two_targets()
    env = project(["greet"], f"  targets: [{a}, {b}]\n", deps=("libdemo", "gcc_linux-64"))
    env.write_text(env.read_text().replace("channels: [", f"channels: [{conda_gcc.path}, "))
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    keys = {}
    for target in (a, b):
        built = _builds(prefix / "compile" / target, "greet")
        assert "${prefix}/bin/x86_64-conda-linux-gnu-cc" in built["compilers"]["cc"], built["compilers"]
        keys[target] = installed(prefix / "compile" / target)["greet"]  # version-build: the key

    alone = tmp_path / "alone"  # the same env file for one of the targets, in one prefix
    result = pmpm("conda_install", alone, "--file", env, "--targets", b)
    assert result.code == 0, result.text
    assert installed(alone)["greet"] == keys[b] != keys[a]


def test_explicit_compilers_win(tmp_path: Path, project) -> None:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed: nothing to name besides gcc")
    env = project(["greet"], extra=f"  compilers: {{cc: {clang}}}\n")
    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", env)
    assert result.code == 0, result.text
    assert _builds(root / "compile", "greet")["compilers"]["cc"].startswith("clang ")


def test_cray_compiler_drivers_are_taken_together(tmp_path: Path, project) -> None:
    """Cray's PrgEnv-gnu drivers ``cc``/``CC``/``ftn`` (in a ``craype`` folder, answering as the
    GNU compilers they wrap) are chosen as a set: ``CC`` for C++ and ``ftn`` for Fortran, never
    the plain g++ found further down PATH. The drivers here run the host's GNU compilers, as
    Cray's do under PrgEnv-gnu; the Cray programming environment itself cannot be installed."""
    craype = tmp_path / "opt" / "cray" / "pe" / "craype" / "2.7.30" / "bin"
    craype.mkdir(parents=True)
    for name, real in (("cc", "gcc"), ("CC", "g++"), ("ftn", "gfortran")):
        found = shutil.which(real)
        if found is None:
            pytest.skip(f"{real} is not installed (CI installs gcc, g++ and gfortran)")
        (craype / name).write_text(f'#!/bin/sh\nexec {os.path.realpath(found)} "$@"\n')
        (craype / name).chmod(0o755)
    path = {"PATH": f"{craype}{os.pathsep}{os.environ['PATH']}"}
    shown = pmpm("host", env=path)
    assert shown.code == 0, shown.text
    for lang, name in (("cc", "cc"), ("cxx", "CC"), ("fc", "ftn")):
        assert f"{lang:<12} gcc " in shown.out and f" {craype / name}\n" in shown.out, shown.out

    env = project(["greet"], extra="  conda: false\n", deps=())
    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", env, env=path)
    assert result.code == 0, result.text
    compilers = _builds(root / "compile", "greet")["compilers"]
    assert str(craype / "cc") in compilers["cc"] and str(craype / "CC") in compilers["cxx"]
    assert str(craype / "ftn") in compilers["fc"]
