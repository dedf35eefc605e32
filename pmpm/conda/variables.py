"""The env file's ``variables``, stored where conda keeps an environment's variables.

conda (``conda env config vars``) and py-rattler's activation both read ``env_vars`` from
``PREFIX/conda-meta/state``, so ``conda activate``, ``pixi``-style activation and pmpm's own
activation set them.
"""

from __future__ import annotations

import json
from pathlib import Path

from pmpm import paths
from pmpm.fsutil import atomic_write_text


def state_file(prefix: Path) -> Path:
    return paths.conda_state(prefix)


def read(prefix: Path) -> dict[str, str]:
    try:
        data = json.loads(state_file(prefix).read_text())
    except (OSError, ValueError):
        return {}
    return dict(data.get("env_vars", {}))


def write(prefix: Path, variables: dict[str, str]) -> bool:
    """Store ``variables``; returns False when nothing changed (the file is then untouched)."""
    path = state_file(prefix)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    if data.get("env_vars", {}) == variables:
        return False
    if variables:
        data["env_vars"] = dict(variables)
    else:
        data.pop("env_vars", None)
    if data:
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    else:
        path.unlink(missing_ok=True)
    return True
