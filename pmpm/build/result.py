"""What running a build plan did (:class:`BuildResult`): its own module, since every run ends
with one, also a run that compiles nothing and loads no other part of the build stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pmpm.build.plan import BuildPlan


@dataclass(frozen=True)
class BuildResult:
    """What running a plan did: the packages built, installed from the binary cache, left as
    they were, and the compiled packages removed because the env file no longer lists them."""

    plan: BuildPlan | None
    built: tuple[str, ...] = ()
    from_cache: tuple[str, ...] = ()
    up_to_date: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def tools(self) -> dict[str, dict[str, str | None]]:
        """The tools each package's build used (its MPI and python identity, None when the
        recipe did not use it): what its key depends on beyond the compilers."""
        steps = self.plan.steps if self.plan is not None else ()
        return {s.name: {"mpi": s.inputs.mpi, "python": s.inputs.python} for s in steps}
