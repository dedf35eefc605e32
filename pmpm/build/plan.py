"""What the compile stage will do, and why: one step per package, ordered, each with a build key
and a decision; the plan is a frozen value (:class:`BuildPlan`) the builds carry out, and the
builds' outcome another (:class:`pmpm.build.result.BuildResult`).

The build key is the digest of the package's ``BuildInputs`` (pmpm.build.inputs): every input
that can change the installed bits. They are kept beside the installed package
(``conda-meta/pmpm/builds/NAME.json``) so a rebuild can say which input changed: the reasons
are the fields in which two ``BuildInputs`` differ (:func:`decide`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm import paths
from pmpm.build.inputs import BuildInputs, digest  # noqa: F401 (digest: used by the record)
from pmpm.build.recipe import Recipe, RecipeBook, apply_request, load_data, render, resolve_options
from pmpm.conda.engine import BUILD_PREFIX
from pmpm.errors import PmpmError

if TYPE_CHECKING:
    from pmpm.builders import Flags  # the build stage's: a conda-only run's result needs none


@dataclass(frozen=True)
class Step:
    """One package of the plan: what it is built from (``inputs``, whose digest is ``key``),
    with which host and flags, and what the run does with it (``decision``, ``reasons``)."""

    name: str
    recipe: Recipe
    source: Any  # pmpm.sources.spec.SourceSpec
    identity: str  # source identity
    target: str
    inputs: BuildInputs
    host: Any  # pmpm.host.detect.Host: the compilers and target the build uses
    flags: Flags
    decision: str = "new"  # new | up to date | rebuild | from cache
    reasons: tuple[str, ...] = ()
    where: str | None = None
    fetched: Any = None  # pmpm.sources.cache.FetchedSource, once the source is identified
    place: Path | None = None  # the padded build prefix (relocatable), or None: built in PREFIX
    cached: Path | None = None  # the package file, when the decision is "from cache"

    @property
    def key(self) -> str:
        return self.inputs.key

    @property
    def compiles(self) -> bool:
        """True when the run must compile it: neither up to date nor installed from the cache."""
        return self.decision != "up to date" and self.cached is None

    @property
    def build_string(self) -> str:
        return build_string(self.inputs)

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.recipe.version}-{self.build_string}.conda"

    def explain(self) -> str:
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return f"{self.name} {self.recipe.version}: {self.decision}{why}"


@dataclass(frozen=True)
class BuildPlan:
    """The compile stage's plan for one state of the stacks: the steps in dependency order,
    the local source trees' stamps taken before they were read (the next no-op check compares
    them), and the files whose change must end the no-op shortcut (recipe files, the
    compilers the plan found, plugins)."""

    steps: tuple[Step, ...]
    trees: Mapping[str, str] = field(default_factory=dict)
    watched: tuple[Path, ...] = ()

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(step.name for step in self.steps)

    @property
    def idle(self) -> bool:
        """True when every package is up to date: the builds have nothing to do."""
        return all(step.decision == "up to date" for step in self.steps)


def build_string(inputs: BuildInputs) -> str:
    """The conda build string of a compiled package: pmpm's prefix and the key's first digits."""
    return f"{BUILD_PREFIX}{inputs.key[:12]}"


def decide(
    inputs: BuildInputs,
    *,
    installed_build: str | None,
    stored: BuildInputs | None,
    forced: str | None = None,
    cached: Path | None = None,
) -> tuple[str, tuple[str, ...]]:
    """The decision for one package and its reasons.

    ``installed_build`` is the build string PREFIX holds (None: not installed), ``stored`` the
    inputs that build was made with, ``forced`` the option that asks for a clean build
    (``--fresh``, ``--rebuild``), ``cached`` a binary cache hit for the new key. A rebuild's
    reasons are the fields in which ``stored`` and ``inputs`` differ.
    """
    if forced:  # built again, never taken from the cache
        return ("rebuild" if installed_build is not None else "new"), (f"forced by {forced}",)
    if installed_build is not None and installed_build == build_string(inputs):
        return "up to date", ()
    if cached is not None:
        return "from cache", (f"built before: {cached.parent.parent}",)
    if installed_build is not None:
        return "rebuild", tuple(inputs.reasons(stored))
    return "new", ()


def order(requests: dict[str, Any], book: RecipeBook, requires_of: Callable[[str], list[str]]) -> list[str]:
    """Recipe names in dependency order (requirements first); a cycle is an error naming it."""
    result: list[str] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(name: str) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*stack[stack.index(name) :], name]
            raise PmpmError(
                "recipes require each other in a cycle: " + " -> ".join(cycle),
                hint="remove one of these `requires.recipes` entries",
            )
        state[name] = 1
        stack.append(name)
        for dep in requires_of(name):
            visit(dep)
        stack.pop()
        state[name] = 2
        result.append(name)

    for name in requests:
        visit(name)
    return result


def stored_inputs(prefix: Path, name: str) -> BuildInputs | None:
    """The inputs the installed build of ``name`` was made with, read back (None: none kept)."""
    return BuildInputs.read(paths.build_inputs_file(prefix, name))


def recipe_for(
    book: RecipeBook,
    name: str,
    request: dict[str, Any],
    context: dict[str, Any],
    *,
    where: str | None,
    requires_only: bool = False,
) -> tuple[Recipe, dict[str, Any]]:
    """Load, version-select and render one recipe for the options the env file asked for.

    ``requires_only`` renders just what the conda solve needs (requirements), before the prefix
    has the python or MPI that the rest of a recipe may name.
    """
    source = book.find(name, where=where)
    data = apply_request(dict(load_data(source, context)), request, where=where)
    if requires_only:
        data = {k: v for k, v in data.items() if k in ("name", "version", "versions", "requires", "options")}
        data.update(source={}, build={})
    options = resolve_options(data, request, origin=source.origin, where=where)
    recipe = render(data, {**context, "options": options}, origin=source.origin)
    return recipe, options
