"""After ``module load``, the host's compiler builds against the environment (EasyBuild style):
``cc x.c -ldemo`` and ``cc x.c $(pkg-config --cflags --libs demo)`` compile, and the program
runs against the environment's ``libdemo`` (a real shared library from tests/factories.py),
also after ``module unload`` (its run path comes from ``LD_RUN_PATH``), with no
``LD_LIBRARY_PATH``. Run with real Lmod and real Environment Modules."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clihelp import pmpm, write_env
from tests.publish.pubhelp import TOOLS, _bash, _differences, _load_and_unload

USE_DEMO_C = """\
#include <stdio.h>
#include <demo.h>
int main(void) { printf("uses libdemo %s from %s\\n", demo_version(), demo_prefix()); return 0; }
"""

DESCRIPTION = "# Demo stack to build against\n# (libdemo and its header)\n"


@pytest.fixture(scope="module")
def build_prefix(tmp_path_factory, demo_channel) -> Path:
    root = tmp_path_factory.mktemp("buildenv")
    env = write_env(root / "env.yml", [demo_channel.path], ["libdemo"])
    env.write_text(DESCRIPTION + "name: buildenv\n" + env.read_text())
    prefix = root / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    return prefix


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_module_lets_the_host_compiler_build_and_run_against_the_env(kind, init, build_prefix, tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or shutil.which("pkg-config") is None:
        pytest.skip("needs a C compiler and pkg-config")
    (tmp_path / "x.c").write_text(USE_DEMO_C)
    moddir = tmp_path / "modules"
    assert pmpm("module", build_prefix, f"--{kind}", moddir).code == 0
    x = shlex.quote(str(tmp_path / "x.c"))
    checks = "\n".join(
        [
            f"{cc} {x} -ldemo -o {tmp_path}/plain || exit 11",
            f"{cc} {x} $(pkg-config --cflags --libs demo) -o {tmp_path}/bypc || exit 12",
            f"{tmp_path}/plain; {tmp_path}/bypc",
            f"ldd {tmp_path}/plain | grep libdemo",
            'echo "root=$PMPM_ROOT_LIBDEMO version=$PMPM_VERSION_LIBDEMO"',
        ]
    )
    proc, before, loaded, after = _load_and_unload(init, moddir, "buildenv", tmp_path, checks)
    lines = proc.stdout.splitlines()
    lib = build_prefix / "lib"
    assert lines.count(f"uses libdemo 2.0 from {build_prefix}") == 2, proc.stdout + proc.stderr
    assert any(line.split("=>")[-1].strip().startswith(f"{lib}/libdemo.so") for line in lines), lines
    assert f"root={build_prefix} version=2.0" in lines
    assert loaded["CPATH"].split(":")[0] == str(build_prefix / "include")
    assert loaded["LIBRARY_PATH"].split(":")[0] == str(lib) == loaded["LD_RUN_PATH"].split(":")[0]
    assert "LD_LIBRARY_PATH" not in loaded
    assert _differences(before, after) == {}
    # the run path is in the program: it loads the env's library without the module
    ran = subprocess.run(
        [tmp_path / "plain"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False
    )
    assert ran.stdout.strip() == f"uses libdemo 2.0 from {build_prefix}", ran.stderr


@pytest.mark.parametrize(("kind", "init"), TOOLS)
def test_module_help_and_whatis_come_from_the_env_file(kind, init, build_prefix, tmp_path):
    moddir = tmp_path / "modules"
    assert pmpm("module", build_prefix, f"--{kind}", moddir).code == 0
    use = f"{init}\nmodule use {shlex.quote(str(moddir))}\n"
    proc = _bash(use + "module whatis buildenv 2>&1\nmodule help buildenv 2>&1", tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout + proc.stderr
    assert "Description: Demo stack to build against" in text  # whatis: the first comment line
    assert "(libdemo and its header)" in text  # help: the whole comment block
    assert "libdemo 2.0" in text  # help: the packages
    assert "PMPM_ROOT_<NAME>" in text
