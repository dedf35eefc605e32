"""``pmpm system_install``: a compiled stack built with the host's compilers and MPI, beside a
conda stack.

On a cluster the site's compilers and MPI know the network; conda's do not. So the compiled
packages go into their own prefix (``ROOT/compile``), built with the compilers on PATH (Cray's
``cc``/``CC``/``ftn`` included) and the site's MPI, while everything else comes from conda in
``ROOT/conda`` (or ``--conda-prefix``, or nowhere with ``_pmpm: {conda: false}`` when the site's
Python comes from a module). The compiled stack is a prefix like any other: genuine conda
packages, records in ``conda-meta``, the same journal, lock and no-op check as conda_install,
which hands the work to the pipeline (:mod:`pmpm.pipeline`); this module only decides the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pmpm.commands import conda_install
from pmpm.env.layout import ROOT_DIR, Layout, find, system_layout
from pmpm.errors import PmpmError

if TYPE_CHECKING:
    from pmpm.spec.model import EnvSpec, PmpmSection


@dataclass(frozen=True)
class Options(conda_install.Options):
    conda_prefix: Path | None = None

    def fingerprint(self) -> dict[str, str]:
        given = str(self.conda_prefix.expanduser().absolute()) if self.conda_prefix else ""
        return {**super().fingerprint(), "conda_prefix_option": given}


def run(opts: Options, say: conda_install.Say = conda_install._print) -> int:
    root = opts.prefix.expanduser().absolute()
    last = find(root)
    provisional = last if last.kind == "system" else _layout(root, None, opts)

    def choose(spec: EnvSpec) -> Layout:
        layout = _layout(root, spec.pmpm, opts)
        _refuse_foreign_root(layout)
        if layout.conda is None:
            say("no conda stack (`_pmpm: {conda: false}`): Python packages are built for the host's python3")
        return layout

    return conda_install.install(provisional, opts, say, choose_layout=choose)


def _layout(root: Path, section: PmpmSection | None, opts: Options) -> Layout:
    from pmpm.spec.targets import targets_for  # after the no-op check: not on its path

    conda_name = section.conda_prefix_name if section else "conda"
    compile_name = section.compile_prefix_name if section else "compile"
    for key, name in (("conda_prefix_name", conda_name), ("compile_prefix_name", compile_name)):
        if not name or Path(name).name != name or name in (".", "..", ROOT_DIR):
            raise PmpmError(
                f"`_pmpm.{key}: {name}` must be a plain folder name",
                hint="the stacks are folders inside PREFIX; use --conda-prefix for a conda stack elsewhere",
            )
    if conda_name == compile_name:
        raise PmpmError(
            f"`conda_prefix_name` and `compile_prefix_name` are both {conda_name!r}",
            hint="the conda and compiled stacks need two folders (or use conda_install for one prefix)",
        )
    if section is not None and not section.conda:
        if opts.conda_prefix is not None:
            raise PmpmError(
                "--conda-prefix was given but the env file says `_pmpm: {conda: false}`",
                hint="drop one of the two",
            )
        if section.mpi == "conda":
            raise PmpmError(
                "`mpi: conda` but there is no conda stack (`_pmpm: {conda: false}`)",
                where="_pmpm.mpi",
                hint="use the system's MPI (`mpi: external`) or let pmpm create the conda stack",
            )
        return system_layout(root, None, compile_name, targets_for(section, opts.targets))
    conda = opts.conda_prefix if opts.conda_prefix is not None else root / conda_name
    targets = targets_for(section, opts.targets) if section is not None else ()
    layout = system_layout(root, conda, compile_name, targets)
    if layout.conda == layout.compile or layout.conda == layout.root:
        raise PmpmError(
            f"--conda-prefix {opts.conda_prefix} is the system_install prefix or its compiled stack",
            hint="give the conda stack its own folder",
        )
    return layout


def _refuse_foreign_root(layout: Layout) -> None:
    """Like conda with a prefix: never take over a folder that holds something else."""
    root = layout.root
    if root.exists() and not root.is_dir():
        raise PmpmError(f"{root} exists and is not a folder", hint="choose another PREFIX")
    if not root.is_dir():
        return
    compiled = layout.compile.parent if layout.targets else layout.compile  # ROOT/compile/T: compile
    ours = {ROOT_DIR, compiled.name} | ({layout.conda.name} if layout.conda else set())
    foreign = sorted(p.name for p in root.iterdir() if p.name not in ours)
    if foreign:
        raise PmpmError(
            f"{root} is not empty and is not a pmpm system_install (it holds {', '.join(foreign[:5])})",
            hint="choose a new or empty folder as PREFIX",
        )
