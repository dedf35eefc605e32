"""Recipes: what to build and how, as data; rendered against the host for one build.

A recipe is a YAML file ``<folder>/<name>.yaml``; folders listed in the env file's
``_pmpm.recipes`` come first, then recipes from plugins (entry-point group ``pmpm.recipes``:
a callable taking the template context and returning the same mapping a YAML file holds, for
recipes that need logic), then the built-ins shipped in ``pmpm/recipes/``. Every string is a jinja2
template over the host profile and the options, rendered strictly: an unknown variable is an
error naming the recipe, never an empty string on a compiler command line.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from pmpm.errors import PmpmError, located

if TYPE_CHECKING:
    from pmpm.spec.yaml_lines import Node

#: keys of a ``_pmpm.packages`` entry that choose the source: each replaces the recipe's
SOURCE_KEYS = ("path", "git", "url", "pypi", "ref", "sha256")
#: option keys of a ``_pmpm.packages`` entry that are not recipe options
PACKAGE_KEYS = {"version", "target", *SOURCE_KEYS}
#: what may go with each kind of source an env file gives
_WITH = {"path": set(), "git": {"ref"}, "url": {"sha256"}, "pypi": {"sha256"}}
#: the recipe's own source kinds a lone `ref:` or `sha256:` applies to
_FITS = {"ref": ("git",), "sha256": ("url", "pypi")}
RECIPE_KEYS = {"name", "version", "versions", "source", "requires", "build", "test", "options", "about"}
BUILD_KEYS = {"system", "args", "env", "script"}


def builtin_dir() -> Path:
    """``pmpm/recipes/``: inside the package, so a wheel (not only a source tree) ships them."""
    return Path(__file__).resolve().parents[1] / "recipes"


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

    def keyed(self) -> str:
        """What the build key hashes of the recipe: :meth:`canonical` without where the source
        is (a folder's path, a tarball's mirrors), since the source's identity (its sha256, git
        commit or tree hash) is a field of the build inputs of its own. The same tree rebuilt
        from a lock, whose recipe names it by an absolute path, has the same key."""
        data = json.loads(self.canonical())
        data["source"] = sorted(self.source)  # its kind (url, git, path, pypi) and keys only
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def unknown_recipes(spec: Any, book: RecipeBook | None = None) -> list[PmpmError]:
    """Every package of an env file's ``_pmpm.packages`` with no recipe, each with its line, so a
    file with several takes one run to fix (the env file's other problems are reported with them)."""
    book = book or RecipeBook(list(spec.pmpm.recipes))
    missing = []
    for request in spec.pmpm.packages:
        try:
            book.find(request.name, where=located(spec.path, request.line))
        except PmpmError as exc:
            missing.append(exc)
    return missing


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
        folders = ", ".join(
            str(f) if f.is_dir() else f"{f} (which does not exist)" for f in [*self.folders, builtin_dir()]
        )
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
    # importlib.metadata (with email, zipfile, csv: ~30 ms) is imported only here: the env-file
    # loader imports this module, and a run without compiled packages never looks for plugins
    from importlib.metadata import entry_points

    return {
        ep.name: RecipeSource(ep.name, f"plugin {ep.value}", plugin=ep)
        for ep in entry_points(group="pmpm.recipes")
    }


def load_data(source: RecipeSource, context: dict[str, Any]) -> dict[str, Any]:
    """The recipe's mapping before rendering (a plugin computes it from the context).

    A file is read with :func:`pmpm.spec.yaml_lines.parse_yaml`, as env files are: complaints name
    ``file:line``, and scalars outside ``options`` keep their text, so an unquoted
    ``version: 2.10`` builds 2.10, not the float 2.1.
    """
    root: Node | None = None
    if source.plugin is not None:
        try:
            data = source.plugin.load()(context)
        except PmpmError:
            raise
        except Exception as exc:
            raise PmpmError(f"recipe plugin failed: {exc!r}", where=source.origin) from None
    else:
        from pmpm.spec.yaml_lines import parse_yaml  # yaml: not for completion (pmpm.cli), which imports this

        root = parse_yaml(source.text or "", Path(source.origin))
        data = _as_written(root) if root is not None else None

    def where(*keys: str) -> str:
        """``file:line`` of the key path (a plugin's recipe has no lines: its origin)."""
        node, line = root, None
        for key in keys:
            node = node.value.get(key) if node is not None and node.is_mapping else None
        if node is not None:
            line = node.line
        return located(source.origin, line)

    if not isinstance(data, dict):
        raise PmpmError("a recipe must be a mapping", where=where())
    _check_keys(data, RECIPE_KEYS, "recipe", where)
    if data.get("name", source.name) != source.name:
        raise PmpmError(
            f"recipe file is named {source.name!r} but says name: {data['name']!r}",
            where=where("name"),
            hint="name the file after the recipe",
        )
    for key in ("version", "source", "build"):
        if key not in data:
            raise PmpmError(f"recipe is missing `{key}`", where=where())
    _check_keys(data["build"], BUILD_KEYS, "build", lambda *keys: where("build", *keys))
    return data


def _as_written(node: Node, *, typed: bool = False) -> Any:
    """Plain data from parsed YAML; a number or date outside ``options`` stays the text written
    (a version, a tag, a checksum), option defaults keep their types as the env file's do."""
    if node.is_mapping:
        return {k: _as_written(v, typed=typed or k == "options") for k, v in node.value.items()}
    if node.is_list:
        return [_as_written(v, typed=typed) for v in node.value]
    if typed or node.value is None or isinstance(node.value, bool | str):
        return node.value
    return node.text


def _check_keys(data: Any, allowed: set[str], what: str, where: Callable[..., str]) -> None:
    if not isinstance(data, dict):
        raise PmpmError(f"`{what}` must be a mapping", where=where())
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            raise PmpmError(
                f"unknown {what} key `{key}`",
                where=where(str(key)),
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


def apply_request(data: dict[str, Any], request: dict[str, Any], *, where: str | None) -> dict[str, Any]:
    """The recipe's data with the env file's ``version`` and source keys applied.

    Every key either reaches the source that is built or is refused naming the env file's line:
    a ``ref:`` alone retargets the recipe's git source (refused for a tarball), a ``sha256:``
    alone pins its tarball, ``path``/``git``/``url``/``pypi`` replace the source, and a
    ``version:`` the recipe does not list needs a source that pins it.
    """
    name = data.get("name", "?")
    data = dict(data)
    given = data.get("source")
    source: dict[str, Any] = given if isinstance(given, dict) else {}
    own = next((k for k in _WITH if k in source), "none")
    asked = {k: request[k] for k in SOURCE_KEYS if k in request}
    for key, value in asked.items():
        if not isinstance(value, str | PurePath) or not str(value):
            raise PmpmError(f"package {name!r}: `{key}` must be text, not {value!r}", where=where)
    wanted = request.get("version")
    if wanted is not None and str(wanted) != str(data["version"]):
        versions = {str(k): v for k, v in (data.get("versions") or {}).items()}
        if str(wanted) not in versions and not asked:
            known = ", ".join(dict.fromkeys([str(data["version"]), *versions]))
            raise PmpmError(
                f"recipe {name!r} knows versions {known}, not {wanted}, and nothing pins that version",
                where=where,
                hint="choose a known version, or give its source: `sha256:` of the recipe's tarball "
                "for that version, `url` + `sha256`, `git` + `ref`, `ref`, or `path`",
            )
        data["version"] = str(wanted)
        if str(wanted) in versions and own in _FITS["sha256"]:
            source = {**source, "sha256": versions[str(wanted)]}
    kinds = [k for k in _WITH if k in asked]
    if len(kinds) > 1:
        raise PmpmError(
            f"package {name!r} gives both `{kinds[0]}` and `{kinds[1]}`", where=where, hint="keep one source"
        )
    if kinds:
        kind = kinds[0]
        extra = sorted(set(asked) - {kind} - _WITH[kind])
        if extra:
            raise PmpmError(
                f"package {name!r}: `{extra[0]}` does not apply to a `{kind}` source",
                where=where,
                hint=f"a `{kind}` source takes "
                + (", ".join(f"`{k}`" for k in sorted(_WITH[kind])) or "nothing else"),
            )
        new = {k: str(v) for k, v in asked.items()}
        if kind == "git" and "ref" not in new:
            if own != "git" or "ref" not in source:
                raise PmpmError(
                    f"package {name!r}: a `git` source needs `ref` (a branch, tag or commit)", where=where
                )
            new["ref"] = source["ref"]
        if kind == "url" and "sha256" not in new:
            raise PmpmError(
                f"package {name!r}: a `url` source needs `sha256`",
                where=where,
                hint="the sha256 of the file makes a changed upstream file an error, not another build",
            )
        source = new
    else:
        for key, value in asked.items():  # a lone `ref:` or `sha256:` retargets the recipe's source
            if own not in _FITS[key]:
                raise PmpmError(
                    f"package {name!r}: `{key}: {value}` applies to a {' or '.join(_FITS[key])} source, "
                    f"but recipe {name!r} builds from a {own} source",
                    where=where,
                    hint="remove it, or give the whole source (`git` + `ref`, `url` + `sha256`, `path`)",
                )
            source = {**source, key: str(value)}
    if isinstance(data.get("source"), dict) or kinds:
        data["source"] = source
    return data


@cache
def _jinja() -> Any:
    """One template environment per run. jinja2 (~30 ms to import) loads with the first string
    that has template markup: a recipe without any, and shell completion (pmpm.cli imports
    this module), never load it."""
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)


def _render_text(text: str, context: dict[str, Any], path: str, origin: str) -> str:
    env = _jinja()
    import jinja2  # loaded by _jinja

    try:
        return env.from_string(text).render(context)
    except jinja2.TemplateError as exc:
        raise PmpmError(f"template error in `{path}`: {exc}", where=origin) from None


def render(data: dict[str, Any], context: dict[str, Any], *, origin: str) -> Recipe:
    """Render every string of the recipe; list items that render empty are dropped."""

    def one(value: Any, path: str) -> Any:
        if isinstance(value, str):
            if "{" not in value:  # no template markup: compiling it would cost more than the rest
                return value
            return _render_text(value, context, path, origin)
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
