"""Genuine conda packages and local channels for tests.

No conda channel is reachable from the test machines, so tests build their own: real
``.conda`` files written by :func:`pmpm.build.package.pack`, indexed by py-rattler, served over
``file://``. The demo channel holds really compiled content built under a long padded
placeholder prefix, so installing it exercises what matters in production: binary and text
prefix relocation, shared-library symlinks, dependency solving, and a Python prefix for pip.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.metadata
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pmpm.build.package import PackageMeta, host_subdir, pack

if TYPE_CHECKING:
    import rattler

#: Length of the demo build prefix. Binary placeholders relocate only to prefixes no longer
#: than this, and pytest's tmp paths for long parametrized test names are ~100 characters.
BUILD_PREFIX_LENGTH = 200

FileContent = bytes | str


async def _settle() -> None:
    # py-rattler may still hold tasks briefly after the awaited call; leaving the coroutine at
    # once can crash the interpreter at exit.
    await asyncio.sleep(0.05)


@dataclass
class LocalChannel:
    """A channel directory of real packages; call :meth:`index` after adding packages."""

    path: Path

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def add(
        self,
        meta: PackageMeta,
        files: Mapping[str, FileContent] | Path | None = None,
        placeholder: str | None = None,
        symlinks: Mapping[str, str] | None = None,
        external_symlinks: Collection[str] = (),
    ) -> Path:
        """Pack a package into ``<path>/<subdir>/`` and return the ``.conda`` path.

        ``files`` is either a staged directory (packed as is) or ``{relative path: content}``;
        ``str`` content is written as UTF-8 and files under ``bin/`` are made executable.
        ``symlinks`` maps link paths to targets and only goes with a mapping of files, since
        adding links to a caller's staged directory would change it behind their back.
        """
        out_dir = self.path / meta.subdir
        if isinstance(files, Path):
            if symlinks:
                raise TypeError("symlinks= only goes with a mapping of files; put links in the staged dir")
            return pack(files, meta, out_dir, placeholder=placeholder, external_symlinks=external_symlinks)
        self.path.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".staging-{meta.name}-", dir=self.path.parent))
        try:
            write_tree(staged, files or {}, symlinks or {})
            return pack(staged, meta, out_dir, placeholder=placeholder, external_symlinks=external_symlinks)
        finally:
            shutil.rmtree(staged)

    def index(self) -> None:
        """Write ``repodata.json`` for every subdir (rattler needs ``noarch`` even when empty)."""
        from rattler.index import index_fs

        for subdir in ("noarch", host_subdir()):
            (self.path / subdir).mkdir(parents=True, exist_ok=True)

        async def run() -> None:
            # force: a package re-packed under the same file name must be re-read.
            await index_fs(self.path, write_zst=False, write_shards=False, force=True)
            await _settle()

        asyncio.run(run())


def write_tree(
    root: Path, files: Mapping[str, FileContent], symlinks: Mapping[str, str] | None = None
) -> None:
    """Create ``files`` and ``symlinks`` under ``root``; files under ``bin/`` are executable."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        path.chmod(0o755 if rel.startswith("bin/") else 0o644)
    for rel, target in (symlinks or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, path)


def rattler_install(
    prefix: Path, specs: Sequence[str], channels: Sequence[str], *, cache_dir: Path
) -> list[rattler.RepoDataRecord]:
    """Solve ``specs`` against ``channels`` and make ``prefix`` hold exactly that solution.

    A test stand-in for pmpm's conda stage. ``cache_dir`` must be per test (or per session for
    channels that never change): rattler's package cache is keyed by file name, so a package
    re-packed under the same name would otherwise come back stale.
    """
    import rattler

    async def run() -> list[rattler.RepoDataRecord]:
        gateway = rattler.Gateway(cache_dir=cache_dir / "repodata")
        records = await rattler.solve(
            sources=list(channels),
            specs=list(specs),
            gateway=gateway,
            virtual_packages=rattler.VirtualPackage.detect(),
        )
        await rattler.install(
            records,
            target_prefix=prefix,
            cache_dir=cache_dir / "pkgs",
            requested_specs=[rattler.MatchSpec(s)._match_spec for s in specs],
            show_progress=False,
        )
        await _settle()
        return records

    return asyncio.run(run())


# --------------------------------------------------------------------------------------------
# The demo channel


@dataclass
class DemoChannel(LocalChannel):
    """The session's read-only demo channel; ``build_prefix`` is the placeholder it was built in."""

    build_prefix: str
    wheel: Path


DEMO_H = """\
#ifndef DEMO_H
#define DEMO_H
const char *demo_version(void);
const char *demo_prefix(void);
#endif
"""

DEMO_C = """\
#include "demo.h"
const char *demo_version(void) { return DEMO_VERSION; }
const char *demo_prefix(void) { return DEMO_PREFIX; }
"""

DEMO_TOOL_C = """\
#include <stdio.h>
#include "demo.h"
int main(void) {
    printf("demo-tool %s prefix=%s\\n", demo_version(), demo_prefix());
    return 0;
}
"""

DEMO_PC = """\
prefix={prefix}
libdir=${{prefix}}/lib
includedir=${{prefix}}/include

Name: demo
Description: pmpm test library
Version: {version}
Libs: -L${{libdir}} -ldemo
Cflags: -I${{includedir}}
"""

PIP_SCRIPT = """\
#!{prefix}/bin/python
# -*- coding: utf-8 -*-
import re
import sys
from pip._internal.cli.main import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def padded_build_prefix(length: int = BUILD_PREFIX_LENGTH) -> str:
    """A fresh conda-build style placeholder path, unique so parallel sessions do not collide."""
    base = os.path.join(tempfile.gettempdir(), f"pmpm-test-{secrets.token_hex(4)}_build")
    if len(base) + 10 > length:
        raise RuntimeError(f"temp dir {tempfile.gettempdir()} too long for a {length}-char prefix")
    return (base + "_placehold" * (length // 10))[:length]


def _gcc(*args: str | Path) -> None:
    subprocess.run(["gcc", "-O1", *map(str, args)], check=True, capture_output=True, text=True)


def _fresh(prefix: Path) -> Path:
    shutil.rmtree(prefix, ignore_errors=True)
    prefix.mkdir(parents=True)
    return prefix


def build_demo_channel(root: Path) -> DemoChannel:
    """Compile and pack the demo packages into ``root/channel`` (wheel in ``root/wheels``)."""
    build_prefix = padded_build_prefix()
    bp = Path(build_prefix)
    src = root / "src"
    src.mkdir(parents=True)
    (src / "demo.h").write_text(DEMO_H)
    (src / "demo.c").write_text(DEMO_C)
    (src / "demo-tool.c").write_text(DEMO_TOOL_C)
    channel = DemoChannel(path=root / "channel", build_prefix=build_prefix, wheel=Path())
    try:
        for major in (1, 2):
            _build_libdemo(channel, bp, src, major)
        _build_demo_tool(channel, bp, src)
        _build_python(channel, bp)
    finally:
        shutil.rmtree(bp, ignore_errors=True)
    channel.add(
        PackageMeta("demo-data", "1.0", "0", noarch="generic", summary="data for demo-tool"),
        {"share/demo-data/data.txt": "demo data 1.0\n"},
    )
    channel.add(
        PackageMeta("demo-needs-old", "1.0", "0", depends=("libdemo <2",)),
        {"share/demo-needs-old/README": "pins libdemo below 2\n"},
    )
    channel.add(
        PackageMeta("demo-conflict", "1.0", "0", depends=("libdemo >=5",)),
        {"share/demo-conflict/README": "needs a libdemo that does not exist\n"},
    )
    channel.index()
    channel.wheel = write_demo_wheel(root / "wheels")
    return channel


def _build_libdemo(channel: LocalChannel, bp: Path, src: Path, major: int) -> None:
    prefix = _fresh(bp)
    real = f"libdemo.so.{major}.0.0"
    (prefix / "lib" / "pkgconfig").mkdir(parents=True)
    (prefix / "include").mkdir()
    _gcc(
        "-fPIC", "-shared", f"-I{src}",
        f'-DDEMO_VERSION="{major}.0"', f'-DDEMO_PREFIX="{prefix}"',
        f"-Wl,-soname,libdemo.so.{major}",
        "-o", prefix / "lib" / real, src / "demo.c",
    )  # fmt: skip
    os.symlink(real, prefix / "lib" / f"libdemo.so.{major}")
    os.symlink(f"libdemo.so.{major}", prefix / "lib" / "libdemo.so")
    shutil.copy(src / "demo.h", prefix / "include" / "demo.h")
    (prefix / "lib" / "pkgconfig" / "demo.pc").write_text(DEMO_PC.format(prefix=prefix, version=f"{major}.0"))
    channel.add(
        PackageMeta("libdemo", f"{major}.0", "0", license="BSD-3-Clause", summary="demo shared library"),
        prefix,
        placeholder=str(prefix),
    )


def _build_demo_tool(channel: LocalChannel, bp: Path, src: Path) -> None:
    prefix = _fresh(bp)
    # Link against a copy of libdemo without a soname: DT_NEEDED becomes plain "libdemo.so",
    # which both libdemo 1.0 and 2.0 provide, so the range libdemo >=1.0,<3 is honest and
    # downgrade tests can run the tool against either.
    stub = _fresh(src / "stub")
    _gcc("-fPIC", "-shared", f"-I{src}", '-DDEMO_VERSION="stub"', '-DDEMO_PREFIX="stub"',
         "-o", stub / "libdemo.so", src / "demo.c")  # fmt: skip
    (prefix / "bin").mkdir()
    _gcc(f"-I{src}", "-o", prefix / "bin" / "demo-tool", src / "demo-tool.c",
         f"-L{stub}", "-ldemo", "-Wl,-rpath,$ORIGIN/../lib")  # fmt: skip
    config = prefix / "bin" / "demo-config"
    config.write_text(f'#!/bin/sh\n# where demo-tool is installed\necho "{prefix}"\n')
    config.chmod(0o755)
    channel.add(
        PackageMeta("demo-tool", "1.0", "0", depends=("libdemo >=1.0,<3", "demo-data")),
        prefix,
        placeholder=str(prefix),
    )


def host_base_python() -> Path:
    """The real interpreter behind whatever venv runs the tests."""
    return Path(getattr(sys, "_base_executable", sys.executable)).resolve()


def _build_python(channel: LocalChannel, bp: Path) -> None:
    """Package a venv of the host interpreter as ``python``: a Python prefix without a CPython build.

    ``python -m venv --without-pip`` plus pip copied from the running interpreter takes a tenth
    of a second where ensurepip takes six.
    """
    shutil.rmtree(bp, ignore_errors=True)
    subprocess.run(
        [host_base_python(), "-m", "venv", "--without-pip", "--symlinks", bp], check=True, capture_output=True
    )
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = bp / "lib" / pyver / "site-packages"
    pip = importlib.metadata.distribution("pip")
    pip_pkg = Path(str(pip.locate_file("pip")))
    dist_info = Path(str(pip._path))  # type: ignore[attr-defined]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(pip_pkg, site / "pip", ignore=ignore, symlinks=True)
    shutil.copytree(dist_info, site / dist_info.name, ignore=ignore)
    for name in ("pip", "pip3", f"pip{sys.version_info.major}.{sys.version_info.minor}"):
        script = bp / "bin" / name
        script.write_text(PIP_SCRIPT.format(prefix=bp))
        script.chmod(0o755)
    # venv points one bin/ link at the host interpreter by absolute path; that link is the point.
    external = [
        f"bin/{p.name}" for p in (bp / "bin").iterdir() if p.is_symlink() and os.path.isabs(os.readlink(p))
    ]
    channel.add(
        PackageMeta(
            "python",
            platform.python_version(),
            "0_venv",
            summary=f"venv of the host interpreter {host_base_python()}",
            extra={"host_python": str(host_base_python())},
        ),
        bp,
        placeholder=str(bp),
        external_symlinks=external,
    )


def write_demo_wheel(out_dir: Path) -> Path:
    """Hand-write ``demo_pip_pkg-0.1-py3-none-any.whl`` (pip installs it offline, no build step)."""
    files = {
        "demo_pip_pkg/__init__.py": (
            '__version__ = "0.1"\n\n\ndef hello():\n    return "hello from demo_pip_pkg"\n'
        ),
        "demo_pip_pkg-0.1.dist-info/METADATA": (
            "Metadata-Version: 2.1\nName: demo-pip-pkg\nVersion: 0.1\nSummary: pmpm test wheel\n"
        ),
        "demo_pip_pkg-0.1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: pmpm-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for name, text in files.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}\n")
    record.append("demo_pip_pkg-0.1.dist-info/RECORD,,\n")
    files["demo_pip_pkg-0.1.dist-info/RECORD"] = "".join(record)
    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / "demo_pip_pkg-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), text)
    return wheel
