"""Where an environment's stacks live: one prefix (conda_install) or two (system_install).

``conda_install PREFIX`` keeps everything in PREFIX. ``system_install ROOT`` keeps the conda stack
in ``ROOT/conda`` (or a prefix given elsewhere, or none) and the compiled stack in
``ROOT/compile``; ``ROOT/.pmpm/layout.json`` says so, and a copy in each stack's
``conda-meta/pmpm`` leads back to ROOT, e.g. from the conda stack's python (``pmpm.require()`` starts from
``sys.prefix``). Every command that takes a PREFIX reads the layout through :func:`find` so it
works on either kind.

This module must stay cheap to import: it is on the no-op path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pmpm import paths
from pmpm.fsutil import atomic_write_text

FORMAT = 1
LAYOUT_NAME = "layout.json"
#: pmpm's folder at a system_install root (record, state, lock)
ROOT_DIR = paths.ROOT_DIR


@dataclass(frozen=True)
class Layout:
    root: Path
    kind: str  # "conda" (one prefix) or "system" (a compiled stack beside a conda stack)
    conda: Path | None  # the conda stack; None when the site's Python comes from a module
    compile: Path  # where compiled packages are installed

    @property
    def meta_dir(self) -> Path:
        """pmpm's own files for the whole environment (record, no-op state)."""
        return paths.root_dir(self.root) if self.kind == "system" else paths.pmpm_dir(self.root)

    @property
    def prefixes(self) -> list[Path]:
        """Search order for activation: the compiled stack shadows the conda stack."""
        found = [self.compile]
        if self.conda is not None and self.conda != self.compile:
            found.append(self.conda)
        return found

    def to_json(self) -> str:
        data = {
            "format": FORMAT,
            "kind": self.kind,
            "root": str(self.root),
            "conda": str(self.conda) if self.conda else None,
            "compile": str(self.compile),
        }
        return json.dumps(data, indent=1) + "\n"


def conda_layout(prefix: Path) -> Layout:
    prefix = Path(prefix).expanduser().absolute()
    return Layout(root=prefix, kind="conda", conda=prefix, compile=prefix)


def system_layout(root: Path, conda: Path | None, compile_name: str = "compile") -> Layout:
    root = Path(root).expanduser().absolute()
    return Layout(
        root=root,
        kind="system",
        conda=Path(conda).expanduser().absolute() if conda is not None else None,
        compile=root / compile_name,
    )


def write(layout: Layout) -> None:
    """Mark ROOT (and the conda stack, which may live elsewhere) as one system_install."""
    if layout.kind != "system":
        return
    atomic_write_text(paths.root_dir(layout.root) / LAYOUT_NAME, layout.to_json())
    for stack in layout.prefixes:
        atomic_write_text(paths.pmpm_dir(stack) / LAYOUT_NAME, layout.to_json())


def _read(path: Path) -> Layout | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") != "system":
        return None
    return Layout(
        root=Path(data["root"]),
        kind="system",
        conda=Path(data["conda"]) if data.get("conda") else None,
        compile=Path(data["compile"]),
    )


def find(path: Path) -> Layout:
    """The layout PATH belongs to: a system_install root, that install's conda stack, or else a
    plain (conda_install) prefix."""
    path = Path(path).expanduser().absolute()
    for marker in (paths.root_dir(path) / LAYOUT_NAME, paths.pmpm_dir(path) / LAYOUT_NAME):
        found = _read(marker)
        if found is not None:
            return found
    return conda_layout(path)
