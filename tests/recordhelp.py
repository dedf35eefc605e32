"""A small compiled project for the record, verify, lock and pinning tests.

Two local source trees build in about a second with the machine's gcc: ``greet`` (make, a shared
library linked with an rpath into the prefix: a binary that embeds the prefix) and ``hello``
(script recipe: a program linking greet, and a text file that names the prefix). The env file
also asks for conda packages of the demo channel, python among them (pip comes with it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.clihelp import pmpm

LIB_C = '#include "greet.h"\nconst char *greet(void) { return "%s"; }\n'
LIB_H = "const char *greet(void);\n"
MAKEFILE = """\
libgreet.so: greet.c
\t$(CC) $(CFLAGS) $(CPPFLAGS) -fPIC -shared -o $@ greet.c $(LDFLAGS)
install: libgreet.so
\tmkdir -p $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include
\tcp libgreet.so $(DESTDIR)$(PREFIX)/lib/
\tcp greet.h $(DESTDIR)$(PREFIX)/include/
"""
APP_C = '#include <stdio.h>\n#include "greet.h"\nint main(void) { printf("%s\\n", greet()); return 0; }\n'
HELLO = """\
name: hello
version: '2.0'
source: {path: ../src/hello}
requires: {recipes: [greet], conda: [demo-data]}
build:
  system: script
  script: |
    mkdir -p $STAGE_PREFIX/bin $STAGE_PREFIX/share/hello
    $CC $CFLAGS $CPPFLAGS -o $STAGE_PREFIX/bin/hello $SRC_DIR/hello.c $LDFLAGS -lgreet
    echo "installed in {{ prefix }}" > $STAGE_PREFIX/share/hello/where.txt
"""


@dataclass
class Project:
    root: Path
    env: Path
    channel: Path

    @property
    def greet_c(self) -> Path:
        return self.root / "src" / "greet" / "greet.c"

    def write_env(self, conda: str = "libdemo", greet_options: str = "") -> Path:
        packages = "    - hello\n" + (f"    - greet: {{{greet_options}}}\n" if greet_options else "")
        self.env.write_text(
            f"channels: [{self.channel}]\n"
            f"dependencies:\n  - {conda}\n  - python\n"
            f"_pmpm:\n  recipes: [recipes]\n  packages:\n{packages}"
        )
        return self.env

    def install(self, prefix: Path, *extra: str) -> str:
        result = pmpm("conda_install", prefix, "--file", self.env, *extra)
        assert result.code == 0, result.text
        return result.out


def make_project(root: Path, channel: Path) -> Project:
    (root / "src" / "greet").mkdir(parents=True)
    (root / "src" / "greet" / "greet.c").write_text(LIB_C % "hello, world")
    (root / "src" / "greet" / "greet.h").write_text(LIB_H)
    (root / "src" / "greet" / "Makefile").write_text(MAKEFILE)
    (root / "src" / "hello").mkdir()
    (root / "src" / "hello" / "hello.c").write_text(APP_C)
    (root / "recipes").mkdir()
    (root / "recipes" / "greet.yaml").write_text(
        "name: greet\nversion: '1.0'\nsource: {path: ../src/greet}\nbuild: {system: make}\n"
    )
    (root / "recipes" / "hello.yaml").write_text(HELLO)
    project = Project(root, root / "env.yml", channel)
    project.write_env()
    return project


def record_of(prefix: Path) -> dict:
    return json.loads((prefix / "conda-meta" / "pmpm" / "record.json").read_text())


def env_id(prefix: Path) -> str:
    return record_of(prefix)["environment_id"]
