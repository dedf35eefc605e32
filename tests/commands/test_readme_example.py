"""README's first command, on a copy of ``examples/offline``: the example must keep working as
the code under it moves (its channel script imports pmpm's packager)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.clihelp import pmpm

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "offline"


def test_the_offline_example_builds_and_runs(tmp_path: Path, monkeypatch) -> None:
    example = tmp_path / "offline"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("channel"))
    monkeypatch.setenv("PMPM_CACHE_DIR", str(tmp_path / "cache"))  # saxpy is built, not taken from a cache
    made = subprocess.run(
        [sys.executable, example / "make_channel.py"], capture_output=True, text=True, check=False
    )
    assert made.returncode == 0, made.stdout + made.stderr
    prefix = tmp_path / "demo"
    result = pmpm("conda_install", prefix, "--file", example / "environment.yml")
    assert result.code == 0, result.text
    assert "building saxpy" in result.out
    hello = subprocess.run([prefix / "bin" / "hello-pmpm"], capture_output=True, text=True, check=True)
    assert hello.stdout == f"hello from a pmpm environment installed in {prefix}\n"
    saxpy = subprocess.run([prefix / "bin" / "saxpy"], capture_output=True, text=True, check=True)
    assert saxpy.stdout.startswith("saxpy built for ") and "(y[1] = 21)" in saxpy.stdout
    again = pmpm("conda_install", prefix, "--file", example / "environment.yml")
    assert again.code == 0 and "building" not in again.out, again.text
