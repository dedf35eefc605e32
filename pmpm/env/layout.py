"""Where an environment's stacks live: one prefix (conda_install) or two (system_install), and
with several CPU targets a compiled stack per target beside one shared conda stack.

``conda_install PREFIX`` keeps everything in PREFIX. ``system_install ROOT`` keeps the conda stack
in ``ROOT/conda`` (or a prefix given elsewhere, or none) and the compiled stack in
``ROOT/compile``; ``ROOT/.pmpm/layout.json`` says so, and a copy in each stack's
``conda-meta/pmpm`` leads back to ROOT, e.g. from the conda stack's python (``pmpm.require()`` starts from
``sys.prefix``). Every command that takes a PREFIX reads the layout through :func:`find` so it
works on either kind.

Several targets (``_pmpm: {targets: [x86_64_v3, x86_64_v4]}``, ``Layout.targets``): the conda
stack stays one, solved once, and each target's compiled packages go into a stack of their own,
a plain conda prefix:

=================  ===================  =====================================
command            conda stack          compiled stack of target T
=================  ===================  =====================================
conda_install P    ``P``                ``P/compile/T``
system_install R   ``R/conda``          ``R/compile/T`` (``compile_prefix_name``)
=================  ===================  =====================================

Each target stack sits beside the conda stack exactly as system_install's one compiled stack does
(activation puts its ``bin`` first and its site-packages on PYTHONPATH), so
:meth:`Layout.for_target` is an ordinary one-stack layout: every per-target step (the builds,
activation) works on it unchanged. A conda_install with targets writes ``layout.json`` too (in
``P/conda-meta/pmpm`` and in each target stack), so :func:`find` finds it from any of its
stacks. With one target (``targets`` empty) nothing changes: the layouts above.

This module must stay cheap to import: it is on the no-op path.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

from pmpm import paths
from pmpm.fsutil import atomic_write_text

#: 2: ``targets`` (format 1, written before it, still reads: one target)
FORMAT = 2
LAYOUT_NAME = "layout.json"
#: pmpm's folder at a system_install root (record, state, lock)
ROOT_DIR = paths.ROOT_DIR
#: the folder of a conda_install's per-target compiled stacks, inside PREFIX
TARGETS_DIR = "compile"


@dataclass(frozen=True)
class Layout:
    root: Path
    kind: str  # "conda" (one prefix) or "system" (a compiled stack beside a conda stack)
    conda: Path | None  # the conda stack; None when the site's Python comes from a module
    compile: Path  # where compiled packages are installed (with targets: the first target's stack)
    #: the CPU targets with a compiled stack each (at least two), or () for one target: today's
    #: layout, whose single compiled stack is ``compile``
    targets: tuple[str, ...] = ()

    @property
    def meta_dir(self) -> Path:
        """pmpm's own files for the whole environment (record, no-op state)."""
        return paths.root_dir(self.root) if self.kind == "system" else paths.pmpm_dir(self.root)

    @property
    def stacks(self) -> list[Path]:
        """Every compiled stack: one per target, or the one."""
        return [self.stack(t) for t in self.targets] if self.targets else [self.compile]

    @property
    def prefixes(self) -> list[Path]:
        """Every stack (each is locked and journalled by a run), compiled stacks first: in a
        one-stack layout this is activation's search order, the compiled stack shadowing the
        conda stack. With targets, activate one :meth:`for_target` view, never all of these."""
        found = self.stacks
        if self.conda is not None and self.conda not in found:
            found.append(self.conda)
        return found

    @property
    def split(self) -> bool:
        """The compiled stack is a prefix of its own beside the conda stack (system_install,
        or one target's view of several): activation adds its site-packages and libraries."""
        return self.kind == "system" or self.compile != self.conda

    def stack(self, target: str) -> Path:
        """Where ``target``'s compiled stack is installed (without targets: the one stack)."""
        if not self.targets:
            return self.compile
        if target not in self.targets:
            raise KeyError(f"{target} is not one of this environment's targets ({', '.join(self.targets)})")
        return self.compile.parent / target

    def for_target(self, target: str) -> Layout:
        """A plain one-stack layout (``targets == ()``) whose compiled stack is ``target``'s and
        whose conda stack is the shared one; ``root`` (and so the record) stays the
        environment's. Without targets, this layout itself."""
        if not self.targets:
            return self
        return replace(self, compile=self.stack(target), targets=())

    def to_json(self) -> str:
        data = {
            "format": FORMAT,
            "kind": self.kind,
            "root": str(self.root),
            "conda": str(self.conda) if self.conda else None,
            "compile": str(self.compile),
            "targets": list(self.targets),
        }
        return json.dumps(data, indent=1) + "\n"


def conda_layout(prefix: Path, targets: tuple[str, ...] = ()) -> Layout:
    """conda_install's layout: everything in PREFIX, or with two or more ``targets`` the
    compiled stacks in ``PREFIX/compile/<target>``."""
    prefix = Path(prefix).expanduser().absolute()
    targets = _several(targets)
    compile_ = prefix / TARGETS_DIR / targets[0] if targets else prefix
    return Layout(root=prefix, kind="conda", conda=prefix, compile=compile_, targets=targets)


def system_layout(
    root: Path, conda: Path | None, compile_name: str = "compile", targets: tuple[str, ...] = ()
) -> Layout:
    """system_install's layout: ``ROOT/compile`` (``ROOT/compile/<target>`` for each of two or
    more ``targets``) beside the conda stack."""
    root = Path(root).expanduser().absolute()
    targets = _several(targets)
    compile_ = root / compile_name / targets[0] if targets else root / compile_name
    return Layout(
        root=root,
        kind="system",
        conda=Path(conda).expanduser().absolute() if conda is not None else None,
        compile=compile_,
        targets=targets,
    )


def _several(targets: tuple[str, ...]) -> tuple[str, ...]:
    """One target is the plain layout: only two or more get a stack each."""
    targets = tuple(dict.fromkeys(targets))
    return targets if len(targets) > 1 else ()


def write(layout: Layout) -> None:
    """Mark ROOT (and the conda stack, which may live elsewhere, and each target's stack) as one
    environment. A conda_install of one target is a plain prefix: no marker (a stale one, left by
    an install with targets, is removed)."""
    if layout.kind != "system" and not layout.targets:
        with contextlib.suppress(FileNotFoundError):
            (paths.pmpm_dir(layout.root) / LAYOUT_NAME).unlink()
        return
    if layout.kind == "system":
        atomic_write_text(paths.root_dir(layout.root) / LAYOUT_NAME, layout.to_json())
    for stack in layout.prefixes:
        atomic_write_text(paths.pmpm_dir(stack) / LAYOUT_NAME, layout.to_json())


def _read(path: Path) -> Layout | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("kind") not in ("system", "conda"):
        return None
    targets = data.get("targets") or []  # format 1: one target
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        return None
    if data["kind"] == "conda" and not targets:  # a plain prefix needs no marker
        return None
    return Layout(
        root=Path(data["root"]),
        kind=data["kind"],
        conda=Path(data["conda"]) if data.get("conda") else None,
        compile=Path(data["compile"]),
        targets=tuple(targets),
    )


def find(path: Path) -> Layout:
    """The layout PATH belongs to: a system_install root, that install's conda stack, a
    conda_install with several targets (or one of its target stacks), or else a plain
    (conda_install) prefix."""
    path = Path(path).expanduser().absolute()
    for marker in (paths.root_dir(path) / LAYOUT_NAME, paths.pmpm_dir(path) / LAYOUT_NAME):
        found = _read(marker)
        if found is not None:
            return found
    return conda_layout(path)
