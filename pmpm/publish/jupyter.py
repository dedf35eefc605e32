"""A Jupyter kernel for the environment's Python (``_pmpm: {jupyter_kernel: true}``).

The original pmpm registered ``--user`` kernels named after the prefix folder, so two
environments in folders of the same name silently took each other's place. Here the kernel name
is ``pmpm-<name>-<first 8 hex digits of sha256(absolute prefix)>``: stable across runs, distinct
for every prefix. The ``kernel.json`` is written directly (no jupyter or ipykernel needed at
install time) into the user's Jupyter data folder, where ``jupyter kernelspec list`` finds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

from pmpm import envinfo
from pmpm.env.layout import Layout
from pmpm.fsutil import atomic_write_text
from pmpm.publish.module_env import module_changes


def kernel_name(layout: Layout) -> str:
    digest = hashlib.sha256(str(layout.root).encode()).hexdigest()[:8]
    name = re.sub(r"[^a-z0-9._-]+", "-", envinfo.env_name(layout).lower()).strip("-.") or "env"
    return f"pmpm-{name}-{digest}"


def data_dir() -> Path:
    """Jupyter's user data folder, as jupyter_core finds it on Linux."""
    if os.environ.get("JUPYTER_DATA_DIR"):
        return Path(os.environ["JUPYTER_DATA_DIR"]).expanduser()
    if os.environ.get("XDG_DATA_HOME"):
        return Path(os.environ["XDG_DATA_HOME"]).expanduser() / "jupyter"
    return Path.home() / ".local" / "share" / "jupyter"


def _python(layout: Layout) -> Path | None:
    for prefix in layout.prefixes:
        candidate = prefix / "bin" / "python"
        if candidate.exists():
            return candidate
    return None


def _kernel_env(layout: Layout) -> dict[str, str]:
    """Variables the kernel needs that launching the interpreter does not set: the activation's
    plain values (``variables``, ``CONDA_PREFIX``) and a system_install's ``PYTHONPATH``."""
    env = {}
    for change in module_changes(layout):
        if change.kind == "set":
            env[change.name] = change.value
        elif change.kind == "path" and change.name == "PYTHONPATH":
            env[change.name] = os.pathsep.join(change.prepend + change.append)
    return env


def register(layout: Layout, say=print) -> Path | None:
    """Write the kernel spec; a missing Python or ipykernel is a note, never a failed run."""
    python = _python(layout)
    if python is None:
        say(f"note: no Jupyter kernel registered: {layout.root} has no bin/python")
        return None
    name = kernel_name(layout)
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({envinfo.env_name(layout)}: {layout.root})",
        "language": "python",
        "env": _kernel_env(layout),
        "metadata": {"pmpm": {"prefix": str(layout.root)}},
    }
    path = data_dir() / "kernels" / name / "kernel.json"
    text = json.dumps(spec, indent=1) + "\n"
    try:
        unchanged = path.read_text() == text
    except OSError:
        unchanged = False
    if not unchanged:
        atomic_write_text(path, text)
        path.chmod(0o644)
    say(f"Jupyter kernel {name}: {path}")
    probe = subprocess.run(
        [str(python), "-c", "import ipykernel"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        say(
            f"note: {python} cannot import ipykernel, so the kernel {name} will not start; "
            "add ipykernel to the env file's dependencies"
        )
    return path
