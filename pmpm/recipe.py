"""Recipes: what to build and how, as data; rendered against the host for one build.

A recipe is a YAML file ``<folder>/<name>.yaml``; folders listed in the env file's
``_pmpm.recipes`` come first, then recipes from plugins (entry-point group ``pmpm.recipes``:
a callable taking the template context and returning the same mapping a YAML file holds, for
recipes that need logic), then the built-ins shipped in ``recipes/``. Every string is a jinja2
template over the host profile and the options, rendered strictly: an unknown variable is an
error naming the recipe, never an empty string on a compiler command line.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from pmpm.errors import PmpmError, located

#: option keys of a ``_pmpm.packages`` entry that are not recipe options
PACKAGE_KEYS = {"version", "path", "git", "ref", "target", "sha256", "url"}
RECIPE_KEYS = {"name", "version", "versions", "source", "requires", "build", "test", "options", "about"}
BUILD_KEYS = {"system", "args", "env", "script"}


def builtin_dir() -> Path:
    """``recipes/`` beside the package in a source tree, ``pmpm/_recipes`` in an installed wheel."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "recipes", here / "_recipes"):
        if candidate.is_dir():
            return candidate
    return here.parent / "recipes"


@dataclass(frozen=True)
class RecipeSource:
    """Where a recipe was found: its file (YAML) or its plugin (entry point), for messages."""

    name: str
    origin: str  # file path or "plugin <module:attr>"
    text: str | None = None  # YAML text, None for plugins
    plugin: Any = None


@dataclass
class Recipe:
    """A recipe rendered for one build: every string final, options resolved."""

    name: str
    version: str
    origin: str
    source: dict[str, Any]
    requires_conda: list[str]
    requires_recipes: list[str]
    system: str | None
    args: list[str]
    env: dict[str, str]
    script: str | None
    test_commands: list[str]
    options: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)  # the data before rendering

    def canonical(self) -> str:
        """The rendered recipe as canonical JSON: what the build key hashes."""
        data = {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "requires": {"conda": self.requires_conda, "recipes": self.requires_recipes},
            "build": {"system": self.system, "args": self.args, "env": self.env, "script": self.script},
            "test": self.test_commands,
            "options": self.options,
        }
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


class RecipeBook:
    """All recipes visible to one env file, by name, in lookup order."""

    def __init__(self, folders: list[Path] | tuple[Path, ...] = ()) -> None:
        self.folders = [*folders]
        self._found: dict[str, RecipeSource] | None = None

    def sources(self) -> dict[str, RecipeSource]:
        if self._found is None:
            found: dict[str, RecipeSource] = {}
            for folder in [*self.folders]:
                found.update({k: v for k, v in _scan(folder).items() if k not in found})
            for name, source in _plugins().items():
                found.setdefault(name, source)
            for name, source in _scan(builtin_dir()).items():
                found.setdefault(name, source)
            self._found = found
        return self._found

    def find(self, name: str, *, where: str | None = None) -> RecipeSource:
        sources = self.sources()
        if name in sources:
            return sources[name]
        close = difflib.get_close_matches(name, list(sources), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        folders = ", ".join(str(f) for f in [*self.folders, builtin_dir()])
        raise PmpmError(
            f"no recipe named {name!r}",
            where=where,
            hint=hint + f"recipes are looked up in {folders} and plugins; see `pmpm recipes list`",
        )


def _scan(folder: Path) -> dict[str, RecipeSource]:
    if not folder.is_dir():
        return {}
    return {
        path.stem: RecipeSource(path.stem, str(path), path.read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.yaml"))
    }


@cache
def _plugins() -> dict[str, RecipeSource]:
    from importlib.metadata import entry_points

    return {
        ep.name: RecipeSource(ep.name, f"plugin {ep.value}", plugin=ep)
        for ep in entry_points(group="pmpm.recipes")
    }


def load_data(source: RecipeSource, context: dict[str, Any]) -> dict[str, Any]:
    """The recipe's mapping before rendering (a plugin computes it from the context)."""
    if source.plugin is not None:
        try:
            data = source.plugin.load()(context)
        except PmpmError:
            raise
        except Exception as exc:
            raise PmpmError(f"recipe plugin failed: {exc!r}", where=source.origin) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(source.text or "")
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise PmpmError(
                f"invalid YAML: {getattr(exc, 'problem', exc)}",
                where=located(source.origin, mark.line + 1 if mark else None),
            ) from None
    if not isinstance(data, dict):
        raise PmpmError("a recipe must be a mapping", where=source.origin)
    _check_keys(data, RECIPE_KEYS, source.origin, "recipe")
    if data.get("name", source.name) != source.name:
        raise PmpmError(
            f"recipe file is named {source.name!r} but says name: {data['name']!r}",
            where=source.origin,
            hint="name the file after the recipe",
        )
    for key in ("version", "source", "build"):
        if key not in data:
            raise PmpmError(f"recipe is missing `{key}`", where=source.origin)
    _check_keys(data["build"], BUILD_KEYS, source.origin, "build")
    return data


def _check_keys(data: Any, allowed: set[str], origin: str, what: str) -> None:
    if not isinstance(data, dict):
        raise PmpmError(f"`{what}` must be a mapping", where=origin)
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            raise PmpmError(
                f"unknown {what} key `{key}`",
                where=origin,
                hint=(f"did you mean `{close[0]}`? " if close else "")
                + "valid keys: "
                + ", ".join(sorted(allowed)),
            )


def resolve_options(
    data: dict[str, Any], requested: dict[str, Any], *, origin: str, where: str | None
) -> dict:
    """The recipe's option defaults overridden by the env file's; unknown options are errors."""
    defaults = dict(data.get("options") or {})
    chosen = dict(defaults)
    for key, value in requested.items():
        if key in PACKAGE_KEYS:
            continue
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise PmpmError(
                f"recipe {data.get('name', '?')!r} ({origin}) has no option `{key}`",
                where=where,
                hint=f"its options are: {known}",
            )
        chosen[key] = value
    return chosen


def render(data: dict[str, Any], context: dict[str, Any], *, origin: str) -> Recipe:
    """Render every string of the recipe; list items that render empty are dropped."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)

    def one(value: Any, path: str) -> Any:
        if isinstance(value, str):
            if "{" not in value:  # no template markup: compiling it would cost more than the rest
                return value
            try:
                return env.from_string(value).render(context)
            except jinja2.TemplateError as exc:
                raise PmpmError(f"template error in `{path}`: {exc}", where=origin) from None
        if isinstance(value, list):
            rendered = [one(v, f"{path}[{i}]") for i, v in enumerate(value)]
            return [v for v in rendered if not (isinstance(v, str) and not v.strip())]
        if isinstance(value, dict):
            return {k: one(v, f"{path}.{k}") for k, v in value.items()}
        return value

    version = str(data["version"])
    context = {**context, "name": data.get("name"), "version": version}
    build = data["build"] or {}
    requires = data.get("requires") or {}
    test = data.get("test") or {}
    return Recipe(
        name=str(data.get("name")),
        version=version,
        origin=origin,
        source=one(data["source"], "source"),
        requires_conda=[str(s) for s in one(requires.get("conda") or [], "requires.conda")],
        requires_recipes=[str(s) for s in one(requires.get("recipes") or [], "requires.recipes")],
        system=one(build.get("system"), "build.system"),
        args=[str(a).strip() for a in one(build.get("args") or [], "build.args")],
        env={k: str(v) for k, v in one(build.get("env") or {}, "build.env").items()},
        script=one(build.get("script"), "build.script"),
        test_commands=[str(c) for c in one(test.get("commands") or [], "test.commands")],
        options=context.get("options", {}),
        raw=data,
    )
