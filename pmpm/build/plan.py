"""What the compile stage will do, and why: one step per package, ordered, each with a build key.

The build key is the digest of the package's ``BuildInputs`` (pmpm.build.inputs): every input
that can change the installed bits. They are kept beside the installed package
(``conda-meta/pmpm/builds/NAME.json``) so a rebuild can say which input changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmpm import paths
from pmpm.build.inputs import BuildInputs, digest  # noqa: F401 (digest: used by the record)
from pmpm.build.recipe import Recipe, RecipeBook, apply_request, load_data, render, resolve_options
from pmpm.conda.engine import BUILD_PREFIX
from pmpm.errors import PmpmError


@dataclass
class Step:
    """One package of the plan."""

    name: str
    recipe: Recipe
    source: Any  # pmpm.sources.cache.SourceSpec
    identity: str  # source identity
    target: str
    inputs: BuildInputs
    key: str
    decision: str = "new"  # new | up to date | rebuild | from cache
    reasons: list[str] = field(default_factory=list)
    where: str | None = None
    fetched: Any = None  # pmpm.sources.cache.FetchedSource, once the source is identified
    place: Path | None = None  # the padded build prefix (relocatable), or None: built in PREFIX
    cached: Path | None = None  # the package file, when the decision is "from cache"

    @property
    def build_string(self) -> str:
        return f"{BUILD_PREFIX}{self.key[:12]}"

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.recipe.version}-{self.build_string}.conda"

    def explain(self) -> str:
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return f"{self.name} {self.recipe.version}: {self.decision}{why}"


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


def stored_inputs(prefix: Path, name: str) -> dict[str, Any] | None:
    """The inputs the installed build of ``name`` was made with (a ``BuildInputs`` as stored)."""
    try:
        return json.loads(paths.build_inputs_file(prefix, name).read_text())
    except (OSError, ValueError):
        return None


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
