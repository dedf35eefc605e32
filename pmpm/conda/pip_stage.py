"""The env file's ``pip:`` entries, installed with the environment's own python.

Like conda, the requirements are handed to pip as a requirements file run from the env file's
folder, so ``-e .``, relative paths and ``--index-url`` lines mean what they mean to conda.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pmpm.errors import PmpmError, located
from pmpm.runlog import run_logged

if TYPE_CHECKING:
    from pmpm.spec.model import EnvSpec


def install_pip(spec: EnvSpec, prefix: Path, *, offline: bool) -> Path | None:
    """Returns the log of the pip run, or None when the env file has no pip entries."""
    if not spec.pip:
        return None
    python = prefix / "bin" / "python"
    if not python.exists():
        raise PmpmError(
            "the env file has pip: entries but the environment has no python to run pip with",
            where=located(spec.path, spec.pip_line),
            hint="add python and pip to dependencies, or move these packages to conda dependencies",
        )
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="pmpm-pip-", delete=False) as req:
        req.write("".join(r.text + "\n" for r in spec.pip))
    argv = [str(python), "-m", "pip", "install", "--no-input", "--disable-pip-version-check", "-r", req.name]
    if offline:
        argv.insert(4, "--no-index")
    env = {**os.environ, "PIP_REQUIRE_VIRTUALENV": "0"}
    try:
        return run_logged(
            argv,
            label="pip",
            what=f"pip failed installing the pip: entries of {located(spec.path, spec.pip_line)}",
            hint="check the pip requirements named in the log; pmpm put the prefix back as it was",
            cwd=spec.path.parent,
            env=env,
        )
    finally:
        os.unlink(req.name)
