"""Drive an installed conda, mamba or micromamba instead of the embedded engine.

For sites that must use their own conda (policy, plugins, a mirror set up in ``.condarc``). pmpm
hands the tool a clean copy of the env file with channels already resolved, and ``nodefaults``
so the tool's own ``.condarc`` channels do not change the meaning of the file. ``pip:`` entries
are left to pmpm's pip stage afterwards, which runs them from the env file's folder as conda would.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml

from pmpm import paths
from pmpm.conda.channels import ResolvedChannel
from pmpm.errors import PmpmError
from pmpm.runlog import run_logged

EXTERNAL = ("conda", "mamba", "micromamba")


def executable(backend: str) -> str:
    found = shutil.which(backend)
    if not found:
        raise PmpmError(
            f"--backend {backend}: no {backend!r} executable on PATH",
            hint=f"install {backend} or put it on PATH, or use the embedded installer (--backend rattler)",
        )
    return found


def env_file_for_tool(spec, channels: list[ResolvedChannel], specs: list[str]) -> str:
    data: dict = {
        "channels": [c.url.rstrip("/") for c in channels] + ["nodefaults"],
        "dependencies": list(specs),
    }
    if spec.variables:
        data["variables"] = dict(spec.variables)
    return yaml.safe_dump(data, sort_keys=False)


def argv_for(
    backend: str, exe: str, prefix: Path, env_file: Path, *, update: bool, offline: bool
) -> list[str]:
    """The tool's command line. conda creates a prefix with ``env update`` too: its
    ``env create`` (26.x) reads ``nodefaults`` as a channel name and asks a server for it, and
    merges ``.condarc``'s channels in, where ``env update`` honours ``nodefaults``."""
    if backend == "micromamba":
        argv = [exe, "install" if update else "create", "-y", "-p", str(prefix), "-f", str(env_file)]
    elif backend == "conda":
        argv = [exe, "env", "update", "-p", str(prefix), "-f", str(env_file), "--prune"]
    else:
        argv = [exe, "env", "update" if update else "create", "-p", str(prefix), "-f", str(env_file)]
        if update:
            argv.append("--prune")
    if offline and backend != "conda":  # conda's `env update` has no --offline:
        argv.append("--offline")  # it reads CONDA_OFFLINE (see install_with)
    return argv


def install_with(
    backend: str, spec, prefix: Path, channels: list[ResolvedChannel], specs: list[str], *, offline: bool
) -> Path:
    exe = executable(backend)
    meta = paths.conda_meta(prefix)
    update = (meta / "history").exists() or any(meta.glob("*.json"))  # pmpm's lock folder alone is not an env
    with tempfile.TemporaryDirectory(prefix="pmpm-") as tmp:
        env_file = Path(tmp) / "environment.yml"
        env_file.write_text(env_file_for_tool(spec, channels, specs))
        return run_logged(
            argv_for(backend, exe, prefix, env_file, update=update, offline=offline),
            label=backend,
            what=f"{backend} failed to {'update' if update else 'create'} {prefix}",
            hint=f"read {backend}'s message above; the embedded installer (--backend rattler) is the default",
            cwd=spec.path.parent,
            env={**os.environ, "CONDA_OFFLINE": "true"} if offline else None,
        )
