"""Environments the tests of tests/publish share (read-only)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.clihelp import pmpm, write_env
from tests.publish.pubhelp import _activate_channel


@pytest.fixture(scope="session")
def env_prefix(tmp_path_factory, demo_channel) -> Path:
    """A pmpm environment with a compiled tool and library (with a .pc file), python, variables
    and an activate.d script; read-only for the tests."""
    root = tmp_path_factory.mktemp("modenv")
    extra = _activate_channel(root / "extra")
    env = write_env(
        root / "env.yml",
        [demo_channel.path, extra.path],
        ["demo-tool", "python", "demo-activate"],
        "variables:\n  DEMO_VAR: hello world\n",
    )
    env.write_text("name: demo-env\n" + env.read_text())
    prefix = root / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    return prefix


@pytest.fixture
def system_root(env_prefix, tmp_path) -> Path:
    """A hand-made system layout: the demo env as the conda stack, a compile stack with a
    program, a library folder and a Python package."""
    from pmpm.env import layout

    root = tmp_path / "sys"
    conda = root / "conda"
    shutil.copytree(env_prefix, conda, symlinks=True)
    shutil.rmtree(conda / "conda-meta" / "pmpm", ignore_errors=True)
    found = layout.system_layout(root, conda)
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    compile_ = found.compile
    (compile_ / "conda-meta").mkdir(parents=True)
    (compile_ / "bin").mkdir()
    (compile_ / "bin" / "sys-tool").write_text("#!/bin/sh\necho sys-tool from compile\n")
    (compile_ / "bin" / "sys-tool").chmod(0o755)
    (compile_ / "lib" / "pkgconfig").mkdir(parents=True)
    (compile_ / "lib" / "pkgconfig" / "sysdemo.pc").write_text(
        f"prefix={compile_}\nName: sysdemo\nDescription: x\nVersion: 7.1\n"
    )
    site = compile_ / "lib" / pyver / "site-packages" / "compiled_pkg"
    site.mkdir(parents=True)
    (site / "__init__.py").write_text("WHERE = 'compile'\n")
    layout.write(found)
    return root
