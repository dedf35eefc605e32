"""The values the pipeline's stages hand each other, in order.

``Request`` (what a front door asks for) -> ``Loaded`` (the env file read, the layout decided)
-> ``Prepared`` (the compiled packages' recipes found, and the conda specs they add to the solve)
-> ``Solved`` (the conda stack's records before and after the solve) -> ``Changes`` (what the
run has to do, or nothing, with the build plan when it can be made before the conda stage)
-> :class:`~pmpm.build.result.BuildResult` (what the builds did, with the
:class:`~pmpm.build.plan.BuildPlan` they carried out) -> the record, the published modules and
the no-op state (which watches the plan's trees and files).

The loop between the two stacks is in these types: the recipes' conda requirements are
``Prepared.recipe_specs`` and join the solve; the solved records (``Solved.compiled_side``, or
the prefix as installed when the conda stage changed it) are what the ``BuildPlan`` is made
against.

Each is frozen: a stage adds what it decided in a new value instead of filling in a half-built
one, so what a stage depends on is what its argument's type says. ``Prepared.compiler`` is the
compile stage's configuration and services (recipes, sources, caches, host detection), not a
result: nothing a stage decides is left on it for a later stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pmpm.env.layout import Layout
from pmpm.env.state import State

if TYPE_CHECKING:
    from pmpm.build.compile_stage import Compiler
    from pmpm.build.plan import BuildPlan, Step
    from pmpm.commands.conda_install import Options
    from pmpm.conda.channels import ResolvedChannel
    from pmpm.spec.model import EnvSpec

Say = Callable[[str], None]


@dataclass(frozen=True)
class Request:
    """What conda_install and system_install ask for. ``want`` is the no-op state computed
    before the env file was parsed; ``choose_layout`` (system_install) decides the stacks from
    the parsed env file, else ``layout`` is used as it is."""

    layout: Layout
    opts: Options
    want: State
    choose_layout: Callable[[EnvSpec], Layout] | None = None


@dataclass(frozen=True)
class Loaded:
    """The env file read and checked, the installer and the stacks decided."""

    spec: EnvSpec
    layout: Layout
    opts: Options  # with the installer chosen (``backend`` is never None here)
    want: State


@dataclass(frozen=True)
class Prepared:
    """What the solve needs: the channels, the env file's specs, and the conda specs the
    compiled packages' recipes build against (``recipe_specs``: they join the solve, and the
    solved prefix then feeds the build plan). Empty when there is no conda stack.
    ``compiler``: the compile stage's services (None: the env file lists no packages to build)."""

    loaded: Loaded
    compiler: Compiler | None
    channels: list[ResolvedChannel]
    specs: list[str]
    recipe_specs: tuple[str, ...]


@dataclass(frozen=True)
class Solved:
    """The conda stack before (``installed``) and after (``records``) the solve, and the
    compiled stack's records before (the same list when it is the same prefix)."""

    prepared: Prepared
    installed: list[Any]  # rattler PrefixRecord
    records: list[Any]  # rattler RepoDataRecord
    compiled_side: list[Any]


@dataclass(frozen=True)
class Changes:
    """What the run has to change: ``plan`` is the build plan when it could be made before
    the conda stage, against the solved prefix (None: it is made after the conda stage changed
    the prefix, against the prefix as installed)."""

    conda: list[Any]  # pmpm.conda.engine.Change
    damaged: frozenset[str]
    variables: bool
    respec: bool
    compiled: frozenset[str]  # compiled packages the prefix holds now
    plan: BuildPlan | None

    @property
    def steps(self) -> tuple[Step, ...] | None:
        """The plan's steps (None: no plan yet)."""
        return self.plan.steps if self.plan is not None else None

    def nothing(self, solved: Solved) -> bool:
        """True when PREFIX already is what the env file asks for."""
        spec, compiler = solved.prepared.loaded.spec, solved.prepared.compiler
        wanted = set(self.plan.names) if self.plan is not None else set()
        idle = self.plan is not None and self.plan.idle
        return (
            not (self.conda or self.damaged or self.variables or spec.pip or self.respec)
            and (compiler is None or idle)
            and self.compiled <= wanted
        )
