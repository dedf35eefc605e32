"""``pmpm remove PREFIX``: the environment, its modulefiles, its Jupyter kernel and its line in
``~/.conda/environments.txt``, after the user confirms (or ``--yes``).

It takes every stack's prefix lock first, as an install does: a run writing the environment
finishes before it goes (the wait names that run), and a run waiting meanwhile starts on an empty
folder. Only a folder that is an environment is removed: a conda prefix (``conda-meta``) or a
system_install root (``.pmpm``). Anything else is refused untouched, so a mistyped path never
costs a home directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from pmpm import envinfo, paths
from pmpm.commands import registry
from pmpm.env.layout import Layout, find
from pmpm.env.prefix_lock import prefix_lock
from pmpm.errors import PmpmError
from pmpm.publish import jupyter, modules

Say = Callable[[str], None]


def _module_dirs(layout: Layout) -> list[Path]:
    """Where modulefiles for the environment may be: the env file's ``_pmpm.modules`` folders and
    every ``MODULEPATH`` entry (``pmpm module --lmod DIR`` writes into one of those)."""
    config = envinfo.read(layout).modules
    found = [Path(config[k]) for k in ("lmod", "tcl") if config.get(k)]
    found += [Path(p) for p in os.environ.get("MODULEPATH", "").split(os.pathsep) if p]
    return list(dict.fromkeys(p.expanduser().absolute() for p in found))


def modulefiles(layout: Layout) -> list[Path]:
    """The modulefiles pmpm wrote for this environment (their header names its root)."""
    found = []
    for directory in _module_dirs(layout):
        for path in sorted(directory.glob("*/*")):
            if path.is_file() and modules._ours(path) == str(layout.root):
                found.append(path)
    return found


def kernel(layout: Layout) -> Path | None:
    """The kernel folder pmpm registered for this environment, if there is one."""
    folder = jupyter.data_dir() / "kernels" / jupyter.kernel_name(layout)
    try:
        spec = json.loads((folder / "kernel.json").read_text())
    except (OSError, ValueError):
        return None
    ours = (spec.get("metadata") or {}).get("pmpm", {}).get("prefix") == str(layout.root)
    return folder if ours else None


def _environment(prefix: Path) -> Layout:
    prefix = Path(prefix).expanduser().absolute()
    if not prefix.is_dir():
        raise PmpmError(f"{prefix} does not exist", hint="give the PREFIX of an environment")
    layout = find(prefix)
    is_env = paths.root_dir(layout.root).is_dir() or paths.conda_meta(layout.root).is_dir()
    if is_env and prefix != layout.root:
        raise PmpmError(
            f"{prefix} is a stack of the system_install at {layout.root}: not removed",
            hint=f"`pmpm remove {layout.root}` removes the whole environment",
        )
    if not is_env:
        raise PmpmError(
            f"{prefix} is not a conda or pmpm environment (no conda-meta or .pmpm folder): not removed",
            hint="give the PREFIX passed to pmpm conda_install or system_install",
        )
    return layout


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise PmpmError("nothing was removed: not confirmed", hint="add --yes to remove without asking")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run(prefix: Path, yes: bool, say: Say) -> int:
    layout = _environment(prefix)
    folders = list(dict.fromkeys([layout.root, *layout.prefixes]))
    folders = [f for f in folders if not any(f != o and f.is_relative_to(o) for o in folders)]
    files = modulefiles(layout)
    spec = kernel(layout)
    say("would remove:" if not yes else "removing:")
    for item in [*folders, *files, *([spec] if spec else [])]:
        say(f"  {item}")
    if not yes and not _confirm(f"remove {layout.root}?"):
        say("nothing was removed")
        return 1
    with ExitStack() as locks:  # as an install takes them: never under a run that is writing
        for stack in layout.prefixes:
            locks.enter_context(prefix_lock(stack, on_wait=say))
        for path in files:
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # the module's folder, once its last version is gone
        if spec is not None:
            shutil.rmtree(spec, ignore_errors=True)
        for folder in folders:
            shutil.rmtree(folder)
        registry.deregister(layout.prefixes, say)  # after: see registry.register
    say(f"removed {layout.root}")
    return 0
