"""What the compile stage will do, and why: one step per package, ordered, each with a build key.

The build key hashes every input that can change the installed bits: the rendered recipe, the
source identity (tarball sha256, git commit, local tree hash), the exact flags, the compilers' and
MPI's identities, the target, the options, the prefix (packages are built for their prefix), the
conda packages the recipe builds against and the keys of the recipes it requires. Each input is
kept beside the installed package (``conda-meta/pmpm/builds/NAME.json``) so a rebuild can say
which input changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmpm.errors import PmpmError
from pmpm.journal import pmpm_dir
from pmpm.recipe import Recipe, RecipeBook, load_data, render, resolve_options

KEY_FORMAT = 1


@dataclass
class Step:
    """One package of the plan."""

    name: str
    recipe: Recipe
    source: Any  # pmpm.sources.SourceSpec
    identity: str  # source identity
    target: str
    inputs: dict[str, Any]
    key: str
    decision: str = "new"  # new | up to date | rebuild | from cache
    reasons: list[str] = field(default_factory=list)
    where: str | None = None
    fetched: Any = None  # pmpm.sources.FetchedSource, once the source is identified
    place: Path | None = None  # the padded build prefix (relocatable), or None: built in PREFIX
    cached: Path | None = None  # the package file, when the decision is "from cache"

    @property
    def build_string(self) -> str:
        from pmpm.conda import BUILD_PREFIX

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


def digest(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def stored_inputs(prefix: Path, name: str) -> dict[str, Any] | None:
    try:
        return json.loads((pmpm_dir(prefix) / "builds" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def explain_change(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Which inputs differ, in words a user acts on."""
    if old is None:
        return []
    labels = {
        "recipe": "recipe changed",
        "source": "source changed",
        "flags": "flags changed",
        "compilers": "compiler changed",
        "mpi": "MPI changed",
        "target": "target changed",
        "options": "options changed",
        "prefix": "prefix moved",
        "format": "pmpm's build format changed",
    }
    reasons = []
    for key, label in labels.items():
        if old.get(key) != new.get(key):
            if key == "source":
                label += f" ({old.get(key)} -> {new.get(key)})"
            reasons.append(label)
    for dep, value in sorted(new.get("recipes", {}).items()):
        if old.get("recipes", {}).get(dep) != value:
            reasons.append(f"dependency {dep} rebuilt")
    for dep, value in sorted(new.get("conda", {}).items()):
        before = old.get("conda", {}).get(dep)
        if before != value:
            reasons.append(f"conda package {dep} changed ({before} -> {value})")
    return reasons or ["inputs changed"]


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
    data = dict(load_data(source, context))
    if requires_only:
        data = {k: v for k, v in data.items() if k in ("name", "version", "versions", "requires", "options")}
        data.update(source={}, build={})
    options = resolve_options(data, request, origin=source.origin, where=where)
    wanted = request.get("version")
    if wanted is not None and str(wanted) != str(data["version"]):
        versions = {str(k): v for k, v in (data.get("versions") or {}).items()}
        if str(wanted) not in versions and not ({"path", "git", "url"} & request.keys()):
            raise PmpmError(
                f"recipe {name!r} knows versions {', '.join([str(data['version']), *versions]) or 'none'}, "
                f"not {wanted}",
                where=where,
                hint="choose a known version, or give the source "
                "(`url` + `sha256`, `git` + `ref`, or `path`)",
            )
        data["version"] = str(wanted)
        if str(wanted) in versions and isinstance(data["source"], dict):
            data["source"] = {**data["source"], "sha256": versions[str(wanted)]}
    for kind in ("path", "git", "url"):
        if kind in request:
            # the env file's `path:` arrives resolved (a Path); sources take text
            data["source"] = {
                k: str(request[k]) for k in ("path", "git", "ref", "url", "sha256") if k in request
            }
            break
    recipe = render(data, {**context, "options": options}, origin=source.origin)
    return recipe, options
