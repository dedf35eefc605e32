"""The environment file's typed model: what every later stage reads instead of YAML, each
request with the line it was written on (read by :mod:`pmpm.spec.envfile`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Dependency:
    """One conda match spec: ``spec`` as written (spacing normalised), for messages;
    ``canonical`` the same spec as conda reads it, without its channel, for the solver, the
    installer and the record (see :mod:`pmpm.spec.matchspec`)."""

    spec: str
    name: str
    channel: str | None
    line: int
    canonical: str


@dataclass(frozen=True)
class PipRequirement:
    text: str
    line: int


@dataclass(frozen=True)
class ChannelRef:
    """A channel as written; local relative folders are made absolute so the spec works from anywhere."""

    text: str
    line: int


@dataclass(frozen=True)
class PackageRequest:
    """One compiled package asked for in ``_pmpm.packages``."""

    name: str
    options: dict[str, Any]
    line: int


@dataclass
class PmpmSection:
    target: str = "host"
    #: several CPU targets, each with a compiled stack of its own (archspec names, ``host``
    #: resolved); empty: the one ``target``
    targets: list[str] = field(default_factory=list)
    targets_line: int | None = None
    recipes: list[Path] = field(default_factory=list)
    packages: list[PackageRequest] = field(default_factory=list)
    conda: bool = True
    backend: str | None = None
    compilers: dict[str, str] = field(default_factory=dict)
    mpi: str | dict[str, Any] | None = None
    cache: str | None = None
    modules: dict[str, str] = field(default_factory=dict)
    jupyter_kernel: bool = False
    conda_prefix_name: str = "conda"
    compile_prefix_name: str = "compile"
    tests: bool = True
    #: the checked `_pmpm.slurm` block (a pmpm.cluster.settings.SlurmSettings), None: not given
    slurm: Any = None
    # Warnings for the user about what was read differently from how it was written (original
    # pmpm keys, conda-lock keys, redundant duplicates); the CLI prints them.
    notes: list[str] = field(default_factory=list)


@dataclass
class EnvSpec:
    path: Path
    name: str | None = None
    channels: list[ChannelRef] = field(default_factory=list)
    nodefaults: bool = False
    dependencies: list[Dependency] = field(default_factory=list)
    pip: list[PipRequirement] = field(default_factory=list)
    pip_line: int | None = None
    variables: dict[str, str] = field(default_factory=dict)
    variables_line: int | None = None
    prefix: str | None = None
    platforms: list[str] = field(default_factory=list)
    pmpm: PmpmSection = field(default_factory=PmpmSection)
    explicit: list[str] = field(default_factory=list)

    def line_of_dependency(self, name: str) -> int | None:
        """Where a conda package was asked for, so solver errors can point at the file."""
        wanted = name.lower()
        for dep in self.dependencies:
            if dep.name == wanted:
                return dep.line
        return None
