"""The compiled stacks a change of targets leaves behind: found before the run, removed after it.

Kept apart from :mod:`pmpm.pipeline.targets` (which runs the build stage per target) because every
run asks, and a conda-only run must not import the build stage.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from pmpm import paths
from pmpm.env.layout import Layout
from pmpm.pipeline.types import Say


def stale_stacks(before: Layout, after: Layout) -> list[Path]:
    """The compiled stacks of the layout last written that the new one no longer has (a target
    dropped, or going from one target to several or back), to be removed by :func:`clear`."""
    return [s for s in before.stacks if s not in after.prefixes and paths.conda_meta(s).is_dir()]


def clear(stale: list[Path], layout: Layout, say: Say) -> None:
    """After the journal's commit (the locks still held): remove the stale stacks, keeping the
    new stacks nested in one (``compile/T`` inside a system_install's former ``compile``)."""
    for stack in stale:
        nested = [p for p in layout.prefixes if stack in p.parents]
        if not nested:
            shutil.rmtree(stack, ignore_errors=True)
            with contextlib.suppress(OSError):  # PREFIX/compile once its last target went
                if stack.parent != layout.root and not paths.conda_meta(stack.parent).is_dir():
                    stack.parent.rmdir()
        else:
            keep = {p.relative_to(stack).parts[0] for p in nested}
            for entry in stack.iterdir():
                if entry.name in keep:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        say(f"removed the compiled stack {stack} (its target is no longer built)")
