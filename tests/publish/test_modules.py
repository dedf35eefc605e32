"""Modulefiles and Jupyter kernels, run through the real module tools (see tests/publish/pubhelp.py)."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest

from tests.clihelp import pmpm, write_env
from tests.publish.pubhelp import (
    PMPM,
    TOOLS,
    _bash,
    _differences,
    _dump,
    _load_and_unload,
    _parse_env,
)

# --- modulefiles ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_module_load_finds_the_env_and_unload_restores_it(kind, init, env_prefix, tmp_path):
    moddir = tmp_path / "modules"
    result = pmpm("module", env_prefix, f"--{kind}", moddir)
    assert result.code == 0, result.text
    [written] = [p for p in moddir.rglob("*") if p.is_file()]
    assert written.relative_to(moddir).parts[0] == "demo-env"
    checks = "\n".join(
        [
            "demo-tool",
            "pkg-config --modversion demo",
            'echo "var=$DEMO_VAR"',
            'echo "activated=$DEMO_ACTIVATED"',
            "python -c \"import sys; print('python=' + sys.prefix)\"",
            "command -v demo-tool",
        ]
    )
    proc, before, loaded, after = _load_and_unload(init, moddir, "demo-env", tmp_path, checks)
    lines = proc.stdout.splitlines()
    assert f"demo-tool 2.0 prefix={env_prefix}" in lines  # binary and its library found
    assert "2.0" in lines  # pkg-config sees libdemo's demo.pc
    assert "var=hello world" in lines  # the env file's variables
    assert f"activated={env_prefix}/share/demo-activate" in lines  # the activate.d script's effect
    assert f"python={env_prefix}" in lines
    assert loaded["PATH"].split(":")[0] == str(env_prefix / "bin")
    assert loaded["CONDA_PREFIX"] == str(env_prefix)
    assert str(env_prefix) in loaded["CMAKE_PREFIX_PATH"].split(":")
    assert loaded["DEMO_SEARCH_PATH"].split(":")[0] == f"{env_prefix}/share/demo-activate"
    man = loaded["MANPATH"].split(":")
    assert man[0] == f"{env_prefix}/share/man" and "/usr/share/man" in man
    assert "LD_LIBRARY_PATH" not in loaded  # conda packages find their libraries by RPATH
    assert _differences(before, after) == {}


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_modules_say_which_environment_they_are(kind, init, env_prefix, tmp_path):
    from pmpm.record.api import environment_id

    env_id = environment_id(env_prefix)
    moddir = tmp_path / "modules"
    assert pmpm("module", env_prefix, f"--{kind}", moddir, "--name", "site/demo/1.0").code == 0
    proc = _bash(f"{init}\nmodule use {shlex.quote(str(moddir))}\nmodule whatis site/demo/1.0 2>&1\n"
                 "module help site/demo/1.0 2>&1", tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "pmpm environment demo-env" in proc.stdout + proc.stderr
    assert (env_id or "unknown (no record)") in proc.stdout + proc.stderr
    assert str(env_prefix) in proc.stdout + proc.stderr


def test_default_version_is_the_short_environment_id(env_prefix, tmp_path):
    from pmpm.record.api import environment_id

    env_id = environment_id(env_prefix)
    assert env_id, "pmpm conda_install writes a record"
    assert pmpm("module", env_prefix, "--lmod", tmp_path / "m").code == 0
    assert (tmp_path / "m" / "demo-env" / f"{env_id[:12]}.lua").is_file()


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_two_pmpm_environments_cannot_be_loaded_together(kind, init, env_prefix, tmp_path):
    moddir = tmp_path / "modules"
    for name in ("first/1", "second/1"):
        assert pmpm("module", env_prefix, f"--{kind}", moddir, "--name", name).code == 0
    script = f"""{init}
export LMOD_AUTO_SWAP=no
module use {shlex.quote(str(moddir))}
module load first || exit 7
module load second && exit 8
module list 2>&1
echo "active=$PMPM_MODULE"
"""
    proc = _bash(script, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "active=first/1" in proc.stdout
    assert "second/1" not in proc.stdout.split("active=")[0].split("Loaded Module")[-1]


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_external_mpi_module_is_required(kind, init, env_prefix, tmp_path):
    """`_pmpm.mpi.module` is stored by the run; here the stored fact is set directly so that no
    MPI needs to be loaded to make the environment."""
    from pmpm import envinfo
    from pmpm.env import layout

    copy = tmp_path / "p"
    shutil.copytree(env_prefix, copy, symlinks=True)
    found = layout.find(copy)
    envinfo.save(found, envinfo.EnvInfo(name="mpienv", mpi_module="fakempi/4.1"))
    moddir, mpidir = tmp_path / "modules", tmp_path / "mpi-modules"
    assert pmpm("module", copy, f"--{kind}", moddir).code == 0
    text = next(p for p in moddir.rglob("*") if p.is_file()).read_text()
    assert ('depends_on("fakempi/4.1")' if kind == "lmod" else 'prereq "fakempi/4.1"') in text
    if kind == "lmod":
        (mpidir / "fakempi").mkdir(parents=True)
        (mpidir / "fakempi" / "4.1.lua").write_text('setenv("FAKEMPI_LOADED", "yes")\n')
    else:
        (mpidir / "fakempi").mkdir(parents=True)
        (mpidir / "fakempi" / "4.1").write_text("#%Module1.0\nsetenv FAKEMPI_LOADED yes\n")
    script = f"""{init}
module use {shlex.quote(str(mpidir))}
module use {shlex.quote(str(moddir))}
module load mpienv
echo "rc=$? mpi=${{FAKEMPI_LOADED-no}}"
module unload mpienv
echo "after=${{FAKEMPI_LOADED-no}}"
"""
    proc = _bash(script, tmp_path)
    # both tools load the prerequisite along (Lmod: depends_on; Modules 5: prereq with auto_handling)
    assert "rc=0 mpi=yes" in proc.stdout, proc.stdout + proc.stderr
    assert "after=no" in proc.stdout


def test_mpi_module_in_the_env_file_is_what_the_module_requires(tmp_path):
    from pmpm.envinfo import EnvInfo
    from pmpm.spec.envfile import load_env_file

    env = tmp_path / "env.yml"
    env.write_text("name: x\ndependencies: [python]\n_pmpm:\n  mpi: {module: openmpi/4.1}\n")
    assert EnvInfo.from_spec(load_env_file(env)).mpi_module == "openmpi/4.1"


def test_bad_module_name_and_non_environment_are_clear_errors(env_prefix, tmp_path):
    result = pmpm("module", env_prefix, "--lmod", tmp_path / "m", "--name", "../../etc/x")
    assert result.code == 1 and "is not a module name" in result.err and "Traceback" not in result.text
    result = pmpm("module", tmp_path / "nothing", "--tcl", tmp_path / "m")
    assert result.code == 1 and "not an environment made by pmpm" in result.err
    result = pmpm("module", env_prefix)
    assert result.code == 1 and "--lmod DIR" in result.err


def test_someone_elses_modulefile_is_not_overwritten(env_prefix, tmp_path):
    theirs = tmp_path / "m" / "demo-env" / "1.0.lua"
    theirs.parent.mkdir(parents=True)
    theirs.write_text('setenv("SITE", "x")\n')
    result = pmpm("module", env_prefix, "--lmod", tmp_path / "m", "--name", "demo-env/1.0")
    assert result.code == 1 and "not written by pmpm" in result.err
    assert theirs.read_text() == 'setenv("SITE", "x")\n'


# --- the env file's `_pmpm.modules` and `jupyter_kernel` ---------------------------------------


def test_env_file_modules_and_kernel_are_refreshed_by_each_run(tmp_path, demo_channel):
    prefix = tmp_path / "p"
    pmpm_section = "_pmpm:\n  modules: {lmod: mods/lmod, tcl: mods/tcl}\n  jupyter_kernel: true\n"
    env = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-tool", "python"], pmpm_section)
    jupyter = {"JUPYTER_DATA_DIR": str(tmp_path / "jupyter")}
    result = pmpm("conda_install", prefix, "--file", env, env=jupyter)
    assert result.code == 0, result.text
    assert "not acted on yet" not in result.text
    lua = list((tmp_path / "mods" / "lmod" / "p").glob("*.lua"))
    tcl = [p for p in (tmp_path / "mods" / "tcl" / "p").iterdir()]
    assert len(lua) == 1 and len(tcl) == 1
    assert tcl[0].read_text().startswith("#%Module")
    assert "ipykernel" in result.out  # the demo python has no ipykernel: a note, not a failure
    [kernel] = (tmp_path / "jupyter" / "kernels").glob("pmpm-p-*/kernel.json")
    spec = json.loads(kernel.read_text())
    assert spec["argv"] == [
        str(prefix / "bin" / "python"),
        "-m",
        "ipykernel_launcher",
        "-f",
        "{connection_file}",
    ]

    write_env(env, [demo_channel.path], ["demo-tool", "python"], "variables:\n  NEW_VAR: v2\n" + pmpm_section)
    result = pmpm("conda_install", prefix, "--file", env, env=jupyter)
    assert result.code == 0, result.text
    lua_now = list((tmp_path / "mods" / "lmod" / "p").glob("*.lua"))
    assert len(lua_now) == 1  # the module of the environment's previous state is gone
    assert '"NEW_VAR", "v2"' in lua_now[0].read_text()
    assert lua_now != lua  # the version follows the environment id, which changed


def test_kernel_name_is_stable_and_distinct_for_same_named_folders(tmp_path, env_prefix, monkeypatch):
    from pmpm.env import layout
    from pmpm.publish import jupyter

    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))
    a, b = tmp_path / "a" / "env", tmp_path / "b" / "env"
    for copy in (a, b):
        shutil.copytree(env_prefix, copy, symlinks=True)
    notes: list[str] = []
    first = jupyter.register(layout.find(a), notes.append)
    second = jupyter.register(layout.find(b), notes.append)
    assert first is not None and second is not None and first != second
    assert first.parent.name.startswith("pmpm-demo-env-")  # the env file's name, not the folder
    assert jupyter.register(layout.find(a), notes.append) == first  # stable
    assert any("add ipykernel" in n for n in notes)
    spec = json.loads(first.read_text())
    assert spec["argv"][0] == str(a / "bin" / "python")
    assert str(a) in spec["display_name"] and spec["env"]["DEMO_VAR"] == "hello world"

    # with ipykernel importable by the env's python, no note
    [site] = list(a.glob("lib/python3*/site-packages"))
    (site / "ipykernel").mkdir()
    (site / "ipykernel" / "__init__.py").write_text("")
    notes.clear()
    jupyter.register(layout.find(a), notes.append)
    assert not any("ipykernel" in n for n in notes), notes


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_system_layout_module_joins_both_stacks(kind, init, system_root, tmp_path):
    moddir = tmp_path / "modules"
    result = pmpm("module", system_root, f"--{kind}", moddir, "--name", "sysenv/1")
    assert result.code == 0, result.text
    checks = "\n".join(
        [
            "sys-tool",
            "demo-tool",  # a copy of the demo env: it prints the prefix it was installed in
            "command -v demo-tool",
            "pkg-config --modversion sysdemo",
            "python -c \"import compiled_pkg; print('pkg=' + compiled_pkg.WHERE)\"",
        ]
    )
    proc, before, loaded, after = _load_and_unload(init, moddir, "sysenv/1", tmp_path, checks)
    compile_, conda = system_root / "compile", system_root / "conda"
    assert "sys-tool from compile" in proc.stdout
    assert "demo-tool 2.0 prefix=" in proc.stdout and str(conda / "bin" / "demo-tool") in proc.stdout
    assert "7.1" in proc.stdout.splitlines() and "pkg=compile" in proc.stdout
    assert loaded["PATH"].split(":")[:2] == [str(compile_ / "bin"), str(conda / "bin")]
    assert loaded["LD_LIBRARY_PATH"] == str(compile_ / "lib")  # the compiled stack only
    assert loaded["CONDA_PREFIX"] == str(conda)
    assert _differences(before, after) == {}


ODD = "a \"quoted\" $HOME `id` [expr 1] {brace} back\\slash 'single' ;semi"
#: activation keeps a newline; both module tools cut a value at its first newline when they write
#: shell code (seen with Lmod 8.6 and Modules 5.2), so pmpm leaves such variables out of modules
MULTILINE = ODD + "\nsecond line"


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_odd_variable_values_arrive_exactly(kind, init, env_prefix, tmp_path):
    from pmpm.conda import variables

    copy = tmp_path / "p"
    shutil.copytree(env_prefix, copy, symlinks=True)
    variables.write(copy, {"ODD_VALUE": ODD, "MULTILINE": MULTILINE})
    moddir = tmp_path / "modules"
    assert pmpm("module", copy, f"--{kind}", moddir, "--name", "odd/1").code == 0
    _, before, loaded, after = _load_and_unload(init, moddir, "odd/1", tmp_path, "true")
    assert loaded["ODD_VALUE"] == ODD
    assert "MULTILINE" not in loaded  # left out of modules, with a comment saying why
    assert "not set here: MULTILINE" in next(p for p in moddir.rglob("*") if p.is_file()).read_text()
    assert _differences(before, after) == {}

    script = f'eval "$({PMPM} activate {shlex.quote(str(copy))})"\n{_dump(tmp_path / "active")}'
    proc = _bash(script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    active = _parse_env((tmp_path / "active").read_text())
    assert active["ODD_VALUE"] == ODD and active["MULTILINE"] == MULTILINE


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_system_install_module_from_the_env_file(kind, init, demo_channel, tmp_path):
    """A real system_install: the compiled stack (a program linking the conda stack's libdemo,
    and a pkg-config file) and the conda stack, published by `_pmpm.modules` and loaded."""
    (tmp_path / "src" / "usedemo").mkdir(parents=True)
    (tmp_path / "src" / "usedemo" / "usedemo.c").write_text(
        '#include <stdio.h>\n#include <demo.h>\nint main(void) { printf("usedemo %s\\n", demo_version()); }\n'
    )
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "usedemo.yaml").write_text(
        "name: usedemo\nversion: '3.1'\nsource: {path: ../src/usedemo}\nrequires: {conda: [libdemo]}\n"
        "build:\n  system: script\n  script: |\n"
        "    mkdir -p $STAGE_PREFIX/bin $STAGE_PREFIX/lib/pkgconfig\n"
        "    $CC $CFLAGS $CPPFLAGS -o $STAGE_PREFIX/bin/usedemo $SRC_DIR/usedemo.c $LDFLAGS -ldemo\n"
        "    printf 'Name: usedemo\\nDescription: d\\nVersion: 3.1\\n'"
        " > $STAGE_PREFIX/lib/pkgconfig/usedemo.pc\n"
    )
    env = write_env(
        tmp_path / "env.yml",
        [demo_channel.path],
        ["libdemo", "python"],
        extra="_pmpm:\n  recipes: [recipes]\n  packages: [usedemo]\n"
        f"  modules: {{{kind}: mods, name: proj/1}}\n",
    )
    root = tmp_path / "stack"
    result = pmpm("system_install", root, "--file", env)
    assert result.code == 0, result.text
    checks = "\n".join(["usedemo", "pkg-config --modversion usedemo", "command -v python"])
    proc, before, loaded, after = _load_and_unload(init, tmp_path / "mods", "proj/1", tmp_path, checks)
    lines = proc.stdout.splitlines()
    assert "usedemo 2.0" in lines and "3.1" in lines
    assert str(root / "conda" / "bin" / "python") in lines
    assert loaded["PATH"].split(":")[:2] == [str(root / "compile" / "bin"), str(root / "conda" / "bin")]
    assert loaded["PMPM_ROOT_LIBDEMO"] == str(root / "conda")  # the stack holding the library
    assert "PMPM_ROOT_USEDEMO" not in loaded  # no headers or libraries: nothing to build against
    assert _differences(before, after) == {}
