"""Local trees under development: re-runs build only what changed, in a kept build folder."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.clihelp import installed, pmpm

#: a library of many objects, one rule per object: make rebuilds the objects whose sources changed
MAKEFILE = """\
OBJS := $(patsubst %.c,%.o,$(sort $(wildcard f*.c)))
libmany.so: $(OBJS)
\t$(CC) -shared -o $@ $(OBJS) $(LDFLAGS)
%.o: %.c
\t$(CC) $(CFLAGS) -fPIC -c -o $@ $<
install: libmany.so
\tmkdir -p $(DESTDIR)$(PREFIX)/lib
\tcp libmany.so $(DESTDIR)$(PREFIX)/lib/
"""
APP_C = '#include <stdio.h>\nint f0(void);\nint main(void) { printf("%d\\n", f0()); return 0; }\n'


@pytest.fixture
def project(tmp_path: Path):
    src = tmp_path / "src"
    (src / "many").mkdir(parents=True)
    (src / "many" / "Makefile").write_text(MAKEFILE)
    # a tree of its own: the same sources as another test's would come from the binary cache
    (src / "many" / "README").write_text(f"test tree {tmp_path.name}\n")
    for i in range(8):
        (src / "many" / f"f{i}.c").write_text(f"int f{i}(void) {{ return {i + 40}; }}\n")
    (src / "app").mkdir()
    (src / "app" / "app.c").write_text(APP_C)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "many.yaml").write_text(
        "name: many\nversion: '1.0'\nsource: {path: ../src/many}\nbuild: {system: make}\n"
    )
    (recipes / "app.yaml").write_text(
        "name: app\nversion: '1.0'\nsource: {path: ../src/app}\nrequires: {recipes: [many]}\n"
        "build:\n  system: script\n  script: |\n"
        "    mkdir -p $STAGE_PREFIX/bin\n"
        "    $CC $CFLAGS -o $STAGE_PREFIX/bin/app $SRC_DIR/app.c $LDFLAGS -lmany\n"
    )
    env = tmp_path / "env.yml"
    env.write_text("dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages: [app]\n")
    return env, src


def _compiled(result) -> list[str]:
    """The C files a run compiled, read from the library's build log."""
    found = re.search(r"installed many 1\.0 \(\d+ files; log: (\S+)\)", result.out)
    assert found, result.out
    return sorted(re.findall(r"-c -o \S+ (f\d+\.c)", Path(found.group(1)).read_text()))


def _app(prefix: Path) -> str:
    return subprocess.run([prefix / "bin" / "app"], capture_output=True, text=True, check=True).stdout


def test_an_edit_recompiles_one_file_and_rebuilds_the_dependents(tmp_path: Path, project) -> None:
    env, src = project
    prefix = tmp_path / "p"
    first = pmpm("conda_install", prefix, "--file", env)
    assert first.code == 0, first.text
    assert _compiled(first) == [f"f{i}.c" for i in range(8)]
    assert _app(prefix) == "40\n"

    (src / "many" / "f0.c").write_text("int f0(void) { return 42; }\n")
    second = pmpm("conda_install", prefix, "--file", env)
    assert second.code == 0, second.text
    assert _compiled(second) == ["f0.c"]  # the other seven objects came from the kept build folder
    assert "many 1.0: rebuild (source changed: f0.c)" in second.out
    assert "app 1.0: rebuild (dependency many rebuilt)" in second.out
    assert _app(prefix) == "42\n"


def test_nothing_changed_is_a_no_op_and_a_touch_builds_nothing(tmp_path: Path, project) -> None:
    env, src = project
    prefix = tmp_path / "p"
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    again = pmpm("conda_install", prefix, "--file", env)
    assert again.code == 0 and "is up to date with" in again.out, again.text  # no plan at all

    os.utime(src / "many" / "f3.c")  # same content, new time: planned, compared, not built
    touched = pmpm("conda_install", prefix, "--file", env)
    assert touched.code == 0 and "already has what" in touched.out and "building" not in touched.out
    after = pmpm("conda_install", prefix, "--file", env)
    assert "is up to date with" in after.out, after.text

    (src / "many" / "f9.c").write_text("int f9(void) { return 9; }\n")  # a new file is an edit
    added = pmpm("conda_install", prefix, "--file", env)
    assert added.code == 0 and _compiled(added) == ["f9.c"], added.text


def test_rebuild_and_fresh(tmp_path: Path, project) -> None:
    env, _ = project
    prefix = tmp_path / "p"
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    versions = installed(prefix)

    forced = pmpm("conda_install", prefix, "--file", env, "--rebuild", "many")
    assert forced.code == 0, forced.text
    assert "many 1.0: rebuild (forced by --rebuild)" in forced.out and "app 1.0: up to date" in forced.out
    assert _compiled(forced) == []  # forced, but make finds every object current
    assert installed(prefix) == versions  # same inputs, same build strings

    fresh = pmpm("conda_install", prefix, "--file", env, "--fresh")
    assert fresh.code == 0, fresh.text
    assert _compiled(fresh) == [f"f{i}.c" for i in range(8)]  # from a clean build folder
    assert "building app" in fresh.out
    assert _app(prefix) == "40\n"
