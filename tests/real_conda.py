"""A real conda (26.7.1, from ``../shared/vendor``) for interop tests, built once per session.

PyPI has no conda distribution, so the vendored source is pip-installed into its own venv with
its PyPI dependencies (about 20 s the first time in a session; later tests reuse the venv).
conda runs as ``python -m conda`` (its entry point refuses some commands when not "initialized"),
with ``solver: classic`` (libmamba is not installable here), a package cache and ``HOME`` of its
own (conda appends every prefix it touches to ``~/.conda/environments.txt``). ``bin/conda`` is the
two-line script that serves as the executable for ``pmpm --backend conda``.

Use it from a test module with::

    @pytest.fixture(scope="session")
    def real_conda(tmp_path_factory):
        return build_real_conda(tmp_path_factory)
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENDOR = REPO.parent / "shared" / "vendor"
TARBALL = VENDOR / "conda-26.7.1.tar.gz"
VERSION = "26.7.1"
#: conda's PyPI runtime dependencies (vendor/README.md), plus the build tools its pyproject names
DEPENDENCIES = [
    *("archspec", "boltons", "charset-normalizer", "conda-package-handling", "distro", "frozendict"),
    *("msgpack", "packaging", "platformdirs", "pluggy", "pycosat", "requests", "ruamel.yaml<0.19"),
    *("setuptools", "tqdm", "truststore", "backports.zstd", "hatchling", "hatch-vcs"),
]


@dataclass(frozen=True)
class RealConda:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "venv" / "bin" / "python"

    @property
    def bin_dir(self) -> Path:
        """Put this first on PATH so ``conda`` is this conda."""
        return self.root / "bin"

    @property
    def env(self) -> dict[str, str]:
        """The environment every conda run (direct or through pmpm) gets."""
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MAMBA", "_CE_"))}
        return {
            **keep,
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "CONDARC": str(self.root / "condarc"),
            "CONDA_PKGS_DIRS": str(self.root / "pkgs"),
            "HOME": str(self.root / "home"),
            "PYTHONNOUSERSITE": "1",
        }

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``conda ARGS``; with ``check`` a failure shows conda's own output."""
        proc = subprocess.run(
            [str(self.python), "-m", "conda", *map(str, args)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"conda {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc


def build_real_conda(tmp_path_factory: pytest.TempPathFactory) -> RealConda:
    """The session's conda, built on first use under the session's base temp dir."""
    if not TARBALL.is_file():
        pytest.skip(f"no vendored conda at {TARBALL} (../shared/vendor is absent)")
    root = tmp_path_factory.getbasetemp() / "real-conda"
    root.mkdir(exist_ok=True)
    conda = RealConda(root)
    with open(root / ".lock", "w") as lock:  # several modules (or workers) may ask at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "ready").exists():
            _build(conda)
            (root / "ready").touch()
    return conda


def _build(conda: RealConda) -> None:
    root = conda.root
    src = root / "src"
    with tarfile.open(TARBALL) as tar:
        tar.extractall(src, filter="data")
    (unpacked,) = [p for p in src.iterdir() if (p / "pyproject.toml").is_file()]
    _check([sys.executable, "-m", "venv", str(root / "venv")])
    pip = [str(conda.python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    _check([*pip, *DEPENDENCIES])
    _check(
        [*pip, "--no-deps", "--no-build-isolation", str(unpacked)],
        env={**os.environ, "SETUPTOOLS_SCM_PRETEND_VERSION": VERSION},
    )
    (root / "condarc").write_text(
        "solver: classic\nchannels: []\nauto_update_conda: false\nnotify_outdated_conda: false\n"
    )
    (root / "pkgs").mkdir()
    (root / "home").mkdir()
    conda.bin_dir.mkdir()
    script = conda.bin_dir / "conda"
    script.write_text(f'#!/bin/sh\nexec "{conda.python}" -m conda "$@"\n')
    script.chmod(0o755)


def _check(argv: list[str], env: dict[str, str] | None = None) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=900)
    if proc.returncode != 0:
        pytest.fail(
            f"building the test conda failed: {' '.join(argv)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
