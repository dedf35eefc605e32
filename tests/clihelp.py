"""Run the real ``pmpm`` CLI in a subprocess and fingerprint prefixes, for tests."""

from __future__ import annotations

import ast
import hashlib
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REALWORLD = (REPO.parent / "shared" / "realworld").resolve()
TEST_RECIPES = REALWORLD / "channels" / "conda-test-recipes"
FORMAT_REPO = REALWORLD / "channels" / "conda-format-repo"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def pmpm(
    *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300
) -> Result:
    """``python -m pmpm ARGS`` with the test's environment; never raises on a non-zero exit."""
    proc = subprocess.run(
        [sys.executable, "-m", "pmpm", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def tree_digest(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its content (or link target): equal digests, same tree."""
    if not root.exists():
        return {}
    digest = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                digest[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                digest[rel] = "dir"
            else:
                digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


def write_env(path: Path, channels: list[str | Path], deps: list[str], extra: str = "") -> Path:
    lines = ["channels:"] + [f"  - {c}" for c in channels] + ["dependencies:"] + [f"  - {d}" for d in deps]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def installed(prefix: Path) -> dict[str, str]:
    """name -> version-build, read from conda-meta the way conda does."""
    import json

    result = {}
    for record in (prefix / "conda-meta").glob("*.json"):
        data = json.loads(record.read_text())
        result[data["name"]] = f"{data['version']}-{data['build']}"
    return result


def march(binary: Path) -> str:
    """The -march a compiled file was built with, as gcc recorded its command line."""
    out = subprocess.run(
        ["readelf", "-p", ".GCC.command.line", binary], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"-march=(\S+)", out)
    assert found, out
    return found.group(1)


def log_of(out: str, package: str) -> Path:
    """The build log an install's output names for ``package`` (``installed NAME ... log: PATH)``)."""
    line = next(line for line in out.splitlines() if line.startswith(f"installed {package} "))
    return Path(line.split("log: ")[1].rstrip(")"))


def loaded_by(args: list[str | Path], prefixes: tuple[str, ...]) -> tuple[str, list[str]]:
    """Run ``pmpm ARGS`` in a fresh interpreter (it must succeed) and return its output and the
    loaded modules whose names start with one of ``prefixes``: what a path costs to import."""
    probe = (
        "import sys\n"
        "from pmpm.__main__ import main\n"
        "assert main(sys.argv[2:]) == 0\n"
        "print(repr(sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[1].split(','))))))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe, ",".join(prefixes), *map(str, args)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    output, _, last = run.stdout.rstrip("\n").rpartition("\n")
    return output, ast.literal_eval(last)
