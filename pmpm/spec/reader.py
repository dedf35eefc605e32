"""The YAML environment file's reader: the top-level keys, channels, variables, platforms and
dependencies (with ``sel(...)`` selectors) checked with their lines, every problem collected
(the ``_pmpm`` section has :mod:`pmpm.spec.pmpm_section`)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pmpm.errors import PmpmError, located
from pmpm.spec import matchspec
from pmpm.spec.model import ChannelRef, Dependency, EnvSpec, PipRequirement
from pmpm.spec.pmpm_section import PmpmReader, Section
from pmpm.spec.yaml_lines import Node, describe, unknown_key

T = TypeVar("T")

TOP_LEVEL_KEYS = ("name", "channels", "dependencies", "variables", "prefix", "platforms", "category", "_pmpm")
SELECTOR_FAMILIES = ("linux", "osx", "win", "unix")

_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
_SELECTOR = re.compile(r"^sel\((.*)\)$")
_BRACKET_CHANNEL = re.compile(r"""\bchannel\s*=\s*["']?([^"',\]\s]+)""")


def _is_local_path(text: str, base: Path) -> bool:
    if text in (".", "..") or text.startswith(("/", "./", "../", "~")):
        return True
    return ("/" in text or "\\" in text) and (base / text).is_dir()


class _Reader:
    """Turns the parsed top-level mapping into an :class:`EnvSpec`; holds what every check needs."""

    def __init__(self, path: Path, subdir: str, known_subdirs: list[str]) -> None:
        self.path = path
        self.base = path.parent
        self.subdir = subdir
        self.known_subdirs = known_subdirs
        self.notes: list[str] = []
        # Everything refused, reported together: a file with six problems takes one run to fix
        self.problems: list[PmpmError] = []

    def attempt(self, check: Callable[..., T], *args: Any) -> T | None:
        """Run one check of one entry; a problem is kept for the final report, and None returned."""
        try:
            return check(*args)
        except PmpmError as exc:
            self.problems.append(exc)
            return None

    # typed access ---------------------------------------------------------------------------

    def error(self, message: str, node: Node | int | None, hint: str | None = None) -> PmpmError:
        line = node.line if isinstance(node, Node) else node
        return PmpmError(message, where=located(self.path, line), hint=hint)

    def text(self, node: Node, what: str) -> str:
        """A scalar as written: versions like `3.10` must not become the float 3.1."""
        if not node.is_scalar or node.value is None or isinstance(node.value, bool) or not node.text:
            raise self.error(f"`{what}` must be a string, not {describe(node)}", node)
        return node.text

    def optional_text(self, node: Node, what: str) -> str | None:
        return None if node.value is None else self.text(node, what)

    def boolean(self, node: Node, what: str) -> bool:
        if not isinstance(node.value, bool):
            raise self.error(f"`{what}` must be true or false, not {describe(node)}", node)
        return node.value

    def items(self, node: Node, what: str) -> list[Node]:
        if node.value is None:  # a key whose entries are all commented out
            return []
        if not node.is_list:
            raise self.error(
                f"`{what}` must be a list (lines starting with `- `), not {describe(node)}", node
            )
        return node.value

    def mapping(self, node: Node, what: str) -> dict[str, Node]:
        if node.value is None:
            return {}
        if not node.is_mapping:
            raise self.error(f"`{what}` must be a mapping (`key: value` lines), not {describe(node)}", node)
        return node.value

    def string_map(self, node: Node, what: str, keys: tuple[str, ...]) -> dict[str, str]:
        result: dict[str, str] = {}
        for key, value in self.mapping(node, what).items():
            if key not in keys:
                self.problems.append(unknown_key(key, keys, f"`{what}`", self.path, value.line))
            elif (text := self.attempt(self.text, value, f"{what}.{key}")) is not None:
                result[key] = text
        return result

    def local_path(self, text: str) -> Path:
        return (self.base / Path(text).expanduser()).resolve()

    # top level ------------------------------------------------------------------------------

    def read(self, top: dict[str, Node]) -> EnvSpec:
        for key, node in top.items():
            if key not in TOP_LEVEL_KEYS:
                self.problems.append(unknown_key(key, TOP_LEVEL_KEYS, "top-level", self.path, node.line))
        spec = EnvSpec(path=self.path)
        if "name" in top:
            spec.name = self.attempt(self.optional_text, top["name"], "name")
        if "prefix" in top:
            spec.prefix = self.attempt(self.optional_text, top["prefix"], "prefix")
        if "channels" in top:
            spec.channels, spec.nodefaults = self.attempt(self.channels, top["channels"]) or ([], False)
        if "dependencies" in top:
            self.attempt(self.dependencies, top["dependencies"], spec)
        if "variables" in top:
            spec.variables_line = top["variables"].line
            spec.variables = self.attempt(self.variables, top["variables"]) or {}
        if "platforms" in top:
            spec.platforms = self.attempt(self.platforms, top["platforms"]) or []
        if "category" in top:
            self.notes.append(
                f"`category: {top['category'].text}` (line {top['category'].line}) is a conda-lock "
                "grouping; pmpm installs every dependency and ignores it"
            )
        section = PmpmReader(self).read(top["_pmpm"]) if "_pmpm" in top else Section()
        spec.pmpm = section.fields
        if section.python_version is not None:
            self.attempt(self.add_python_version, spec, *section.python_version)
        spec.pmpm.notes = self.notes
        return spec

    def channels(self, node: Node) -> tuple[list[ChannelRef], bool]:
        channels: list[ChannelRef] = []
        nodefaults = False
        for item in self.items(node, "channels"):
            text = (self.attempt(self.text, item, "channels") or "").strip()
            if not text:
                continue
            if text == "nodefaults":
                nodefaults = True
            elif URL.match(text):
                channels.append(ChannelRef(text, item.line))
            elif _is_local_path(text, self.base):
                channels.append(ChannelRef(str(self.local_path(text)), item.line))
            else:
                channels.append(ChannelRef(text, item.line))
        return channels, nodefaults

    def variables(self, node: Node) -> dict[str, str]:
        result: dict[str, str] = {}
        for key, value in self.mapping(node, "variables").items():
            text = self.attempt(self.variable, key, value)
            if text is not None:
                result[key] = text
        return result

    def variable(self, key: str, value: Node) -> str:
        if not _ENV_VAR_NAME.match(key):
            raise self.error(
                f"`{key}` is not a valid environment variable name",
                value,
                hint="use letters, digits and `_`, not starting with a digit",
            )
        if not value.is_scalar:
            raise self.error(f"variable `{key}` must be a single value, not {describe(value)}", value)
        if value.value is None:
            raise self.error(f"variable `{key}` has no value", value, hint=f'write `{key}: ""` for empty')
        return value.text or ""

    def platforms(self, node: Node) -> list[str]:
        return [name for item in self.items(node, "platforms") if (name := self.attempt(self.platform, item))]

    def platform(self, item: Node) -> str:
        name = self.text(item, "platforms")
        if name not in self.known_subdirs:
            close = difflib.get_close_matches(name, self.known_subdirs, n=1)
            hint = f"did you mean `{close[0]}`?" if close else "use conda subdir names such as linux-64"
            raise self.error(f"unknown platform `{name}`", item, hint=hint)
        return name

    # dependencies ---------------------------------------------------------------------------

    def dependencies(self, node: Node, spec: EnvSpec) -> None:
        by_name: dict[str, int] = {}
        for item in self.items(node, "dependencies"):
            self.attempt(self.dependency, item, spec, by_name)

    def dependency(self, item: Node, spec: EnvSpec, by_name: dict[str, int]) -> None:
        entry = self.dependency_entry(item, spec)
        if entry is None:
            return
        text, line = entry
        written = matchspec.normalise(text)
        try:
            match = matchspec.parse(written)
            canonical = matchspec.canonical(match)
        except matchspec.InvalidSpec as exc:
            hint = "write a conda match spec such as `numpy >=1.26` or `conda-forge::numpy=1.26`"
            if "{{" in written or "{%" in written:
                hint = "this is a template placeholder; render the template before using the file"
            raise self.error(str(exc), line, hint=hint) from None
        channel = self.channel_of(written, match)
        dep = Dependency(written, match.name.normalized, channel, line, canonical)
        self.add_dependency(spec.dependencies, by_name, dep)

    def dependency_entry(self, item: Node, spec: EnvSpec) -> tuple[str, int] | None:
        """The spec text of one list item, or None for pip sections and selectors that do not apply."""
        if item.is_mapping:
            if len(item.value) != 1:
                raise self.error(
                    "a dependency entry must be a package spec, a `pip:` list or a `sel(...)` entry",
                    item,
                )
            [(key, value)] = item.value.items()
            if key == "pip":
                if spec.pip_line is not None:
                    raise self.error(
                        f"a second `pip:` section (the first is at line {spec.pip_line})",
                        item,
                        hint="merge them into one `- pip:` list",
                    )
                spec.pip_line = item.line
                spec.pip = [
                    PipRequirement(self.text(req, "pip").strip(), req.line)
                    for req in self.items(value, "pip")
                ]
                return None
            selector = _SELECTOR.match(key)
            if selector is None:
                raise self.error(
                    f"unexpected `{key}:` in dependencies",
                    item,
                    hint="entries are package specs, a `- pip:` list or selectors like `- sel(linux): pkg`",
                )
            if not self.selector_applies(selector.group(1).strip(), item):
                return None
            return self.text(value, "dependencies"), item.line
        return self.text(item, "dependencies"), item.line

    def selector_applies(self, expr: str, node: Node) -> bool:
        os_name = self.subdir.split("-", 1)[0]
        name = expr.lower()
        if name in SELECTOR_FAMILIES:
            return os_name in ("linux", "osx") if name == "unix" else os_name == name
        squashed = {s.replace("-", ""): s for s in self.known_subdirs}
        exact = squashed.get(name.replace("-", ""))
        if exact is None:
            raise self.error(
                f"unknown selector `sel({expr})`",
                node,
                hint=f"use {', '.join(SELECTOR_FAMILIES)} or a platform such as linux-64",
            )
        return exact == self.subdir

    def channel_of(self, written: str, match: Any) -> str | None:
        if match.channel is None:
            return None
        bracket = _BRACKET_CHANNEL.search(written) if "::" not in written else None
        prefix = bracket.group(1) if bracket else written.split("::", 1)[0].strip()
        if URL.match(prefix):
            return prefix  # the channel's name alone would lose the host
        if _is_local_path(prefix, self.base):
            return str(self.local_path(prefix))
        return match.channel.name

    def add_dependency(self, deps: list[Dependency], by_name: dict[str, int], dep: Dependency) -> None:
        """Conda accepts the same package twice; a bare repeat is harmless, differing pins are not."""
        if dep.name not in by_name:
            by_name[dep.name] = len(deps)
            deps.append(dep)
            return
        index = by_name[dep.name]
        first = deps[index]
        if (first.canonical, first.channel) != (dep.canonical, dep.channel) and not (
            dep.spec.lower() == dep.name or first.spec.lower() == first.name
        ):
            raise self.error(
                f"`{dep.name}` is listed twice: `{first.spec}` (line {first.line}) and `{dep.spec}` "
                f"(line {dep.line})",
                dep.line,
                hint=f"combine them into one entry, e.g. `{dep.name} >=1.0,<2`",
            )
        kept = first if dep.spec.lower() == dep.name else dep
        deps[index] = kept
        self.notes.append(
            f"`{dep.name}` is listed twice in dependencies (lines {first.line} and {dep.line}); "
            f"using `{kept.spec}` from line {kept.line}"
        )

    def add_python_version(self, spec: EnvSpec, version: str, line: int) -> None:
        """The original pmpm's `python_version` becomes a dependency unless one already names python."""
        pinned = spec.line_of_dependency("python")
        if pinned is not None:
            self.notes.append(
                f"`_pmpm.python_version: {version}` (line {line}) is ignored: dependencies already "
                f"name python at line {pinned}"
            )
            return
        text = f"python={version}"
        try:
            canonical = matchspec.canonical(matchspec.parse(text))
        except matchspec.InvalidSpec as exc:
            raise self.error(f"invalid `_pmpm.python_version: {version}`: {exc.reason}", line) from None
        spec.dependencies.append(Dependency(text, "python", None, line, canonical))
        self.notes.append(
            f"`_pmpm.python_version: {version}` (line {line}) is read as the dependency `{text}`"
        )
