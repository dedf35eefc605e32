"""Build a small local conda channel, offline, for the README's first command.

No conda channel is needed: a C library and a tool that links it are compiled with the host's
gcc in a long placeholder prefix, packed as genuine ``.conda`` files by pmpm's packager and
indexed with py-rattler, so ``pmpm conda_install`` has real packages to solve and relocate.
Run it from anywhere; it writes ``channel/`` next to this file.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from pathlib import Path

from rattler.index import index_fs

from pmpm.build.package import PackageMeta, pack

HERE = Path(__file__).resolve().parent
CHANNEL = HERE / "channel"

LIB_C = """
const char *greeting_prefix(void) { return "@PREFIX@"; }
const char *greeting(void) { return "hello from a pmpm environment"; }
"""
TOOL_C = """
#include <stdio.h>
const char *greeting(void);
const char *greeting_prefix(void);
int main(void) { printf("%s installed in %s\\n", greeting(), greeting_prefix()); return 0; }
"""


def build(build_prefix: Path) -> None:
    src = build_prefix.parent / "src"
    src.mkdir()
    (src / "greet.c").write_text(LIB_C.replace("@PREFIX@", str(build_prefix)))
    (src / "hello.c").write_text(TOOL_C)
    lib = build_prefix / "libgreet"
    (lib / "lib").mkdir(parents=True)
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-fPIC",
            "-shared",
            "-Wl,-soname,libgreet.so.1",
            "-o",
            lib / "lib" / "libgreet.so.1.0",
            src / "greet.c",
        ],
        check=True,
    )
    (lib / "lib" / "libgreet.so.1").symlink_to("libgreet.so.1.0")
    (lib / "lib" / "libgreet.so").symlink_to("libgreet.so.1")
    pack(lib, PackageMeta("libgreet", "1.0", "0"), CHANNEL / "linux-64", placeholder=str(build_prefix))

    tool = build_prefix / "hello"
    (tool / "bin").mkdir(parents=True)
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-o",
            tool / "bin" / "hello-pmpm",
            src / "hello.c",
            f"-L{lib / 'lib'}",
            "-lgreet",
            "-Wl,-rpath,$ORIGIN/../lib",
        ],
        check=True,
    )
    meta = PackageMeta("hello-pmpm", "1.0", "0", depends=("libgreet >=1,<2",))
    pack(tool, meta, CHANNEL / "linux-64", placeholder=str(build_prefix))


async def index() -> None:
    await index_fs(CHANNEL, write_zst=False, write_shards=False, force=True)
    await asyncio.sleep(0.05)


def main() -> None:
    shutil.rmtree(CHANNEL, ignore_errors=True)
    (CHANNEL / "noarch").mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="pmpm-example-") as tmp:
        build(Path(tmp) / ("build_placehold" * 8))
    asyncio.run(index())
    print(f"channel ready: {CHANNEL}")


if __name__ == "__main__":
    main()
