"""The environment file, read into a typed model that remembers lines.

Users bring environment files written for conda, mamba, conda-lock or the original pmpm; anything
they can write there must either load or be rejected with ``file:line`` and what to write instead.
Everything downstream works from :class:`EnvSpec` and never looks at YAML again, so every check a
user can fail happens here, where the line numbers are still known.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pmpm import matchspec
from pmpm.errors import PmpmError, combined, located
from pmpm.yaml_lines import Node, parse_yaml

T = TypeVar("T")

TOP_LEVEL_KEYS = ("name", "channels", "dependencies", "variables", "prefix", "platforms", "category", "_pmpm")
SELECTOR_FAMILIES = ("linux", "osx", "win", "unix")

_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
_SELECTOR = re.compile(r"^sel\((.*)\)$")
_BRACKET_CHANNEL = re.compile(r"""\bchannel\s*=\s*["']?([^"',\]\s]+)""")


@dataclass(frozen=True)
class Dependency:
    """One conda match spec: ``spec`` as written (spacing normalised), for messages;
    ``canonical`` the same spec as conda reads it, without its channel, for the solver, the
    installer and the record (see :mod:`pmpm.matchspec`)."""

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


def load_env_file(path: Path, *, subdir: str | None = None) -> EnvSpec:
    """Read an environment file; ``subdir`` (default: this machine's) decides ``sel(...)`` entries."""
    path = Path(path).expanduser().resolve()
    text = _read_text(path)
    if _is_explicit(text):
        return _load_explicit(text, path)
    root = parse_yaml(text, path)
    if root is None:
        raise PmpmError(
            "the environment file has nothing but comments",
            where=str(path),
            hint="list packages under `dependencies:`",
        )
    if not root.is_mapping:
        raise PmpmError(
            f"the top level must be a mapping with keys such as `channels:` and `dependencies:`, "
            f"not {_describe(root)}",
            where=located(path, root.line),
            hint="explicit package lists must start with a line `@EXPLICIT`",
        )
    from rattler import Subdir  # lazy: py-rattler is slow to import

    known_subdirs = [str(p) for p in Subdir.all()]
    if subdir is None:
        subdir = str(Subdir.current())
    elif subdir not in known_subdirs:
        raise PmpmError(f"unknown platform `{subdir}`", hint=f"use one of: {', '.join(known_subdirs)}")
    reader = _Reader(path, subdir, known_subdirs)
    spec = reader.read(root.value)
    if reader.problems:
        from pmpm.recipe import unknown_recipes  # only on the error path: recipes load jinja2

        reader.problems += unknown_recipes(spec)
        reader.problems.sort(key=_line_of)
        raise combined(reader.problems, "in the environment file")
    return spec


def _line_of(problem: PmpmError) -> int:
    """The line a reader's problem names (its ``where`` is ``file:line``), for reporting in order."""
    line = (problem.where or "").rpartition(":")[2]
    return int(line) if line.isdigit() else 0


def _read_text(path: Path) -> str:
    if not path.exists():
        raise PmpmError("environment file not found", where=str(path), hint="check the path")
    if path.is_dir():
        raise PmpmError(
            "expected an environment file, found a folder",
            where=str(path),
            hint="pass the environment.yml inside it",
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PmpmError(f"cannot read the environment file: {exc.strerror}", where=str(path)) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PmpmError(
            "the environment file is not valid UTF-8",
            where=located(path, line),
            hint="save the file as UTF-8",
        ) from None
    if not text.strip():
        raise PmpmError(
            "the environment file is empty", where=str(path), hint="list packages under `dependencies:`"
        )
    return text


# --- @EXPLICIT files -------------------------------------------------------------------------


def _is_explicit(text: str) -> bool:
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return line == "@EXPLICIT"
    return False


def _load_explicit(text: str, path: Path) -> EnvSpec:
    """Explicit lists pin exact package files; keep the URLs with their checksum fragments."""
    urls: list[str] = []
    platforms: list[str] = []
    marker_seen = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            match = re.match(r"#\s*platform:\s*(\S+)", line)
            if match and not marker_seen:
                platforms.append(match.group(1))
            continue
        if not line:
            continue
        if not marker_seen:
            marker_seen = True  # _is_explicit made sure this is `@EXPLICIT`
            continue
        url = line.split("#", 1)[0]
        if not _URL.match(line) or not url.endswith((".conda", ".tar.bz2")):
            raise PmpmError(
                f"`{line}` is not a package URL",
                where=located(path, number),
                hint="after `@EXPLICIT` every line must be the URL of a .conda or .tar.bz2 file",
            )
        urls.append(line)
    if not urls:
        raise PmpmError("no package URLs after `@EXPLICIT`", where=str(path))
    return EnvSpec(path=path, platforms=platforms, explicit=urls)


# --- YAML environment files ------------------------------------------------------------------


def _describe(node: Node) -> str:
    if node.is_mapping:
        return "a mapping"
    if node.is_list:
        return "a list"
    if node.value is None:
        return "empty"
    if node.text == "":
        return "an empty string"
    if isinstance(node.value, bool):
        return f"the boolean `{node.text}`"
    return f"`{node.text}`"


def _unknown_key(key: str, valid: tuple[str, ...] | list[str], what: str, path: Path, line: int) -> PmpmError:
    import difflib  # only on the error path

    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`? " if close else ""
    hint += f"valid keys: {', '.join(valid)}"
    return PmpmError(f"unknown {what} key `{key}`", where=located(path, line), hint=hint)


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
            raise self.error(f"`{what}` must be a string, not {_describe(node)}", node)
        return node.text

    def optional_text(self, node: Node, what: str) -> str | None:
        return None if node.value is None else self.text(node, what)

    def boolean(self, node: Node, what: str) -> bool:
        if not isinstance(node.value, bool):
            raise self.error(f"`{what}` must be true or false, not {_describe(node)}", node)
        return node.value

    def items(self, node: Node, what: str) -> list[Node]:
        if node.value is None:  # a key whose entries are all commented out
            return []
        if not node.is_list:
            raise self.error(
                f"`{what}` must be a list (lines starting with `- `), not {_describe(node)}", node
            )
        return node.value

    def mapping(self, node: Node, what: str) -> dict[str, Node]:
        if node.value is None:
            return {}
        if not node.is_mapping:
            raise self.error(f"`{what}` must be a mapping (`key: value` lines), not {_describe(node)}", node)
        return node.value

    def string_map(self, node: Node, what: str, keys: tuple[str, ...]) -> dict[str, str]:
        result: dict[str, str] = {}
        for key, value in self.mapping(node, what).items():
            if key not in keys:
                self.problems.append(_unknown_key(key, keys, f"`{what}`", self.path, value.line))
            elif (text := self.attempt(self.text, value, f"{what}.{key}")) is not None:
                result[key] = text
        return result

    def local_path(self, text: str) -> Path:
        return (self.base / Path(text).expanduser()).resolve()

    # top level ------------------------------------------------------------------------------

    def read(self, top: dict[str, Node]) -> EnvSpec:
        for key, node in top.items():
            if key not in TOP_LEVEL_KEYS:
                self.problems.append(_unknown_key(key, TOP_LEVEL_KEYS, "top-level", self.path, node.line))
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
        from pmpm.spec_pmpm import PmpmReader, Section  # the `_pmpm` section has a module of its own

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
            elif _URL.match(text):
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
            raise self.error(f"variable `{key}` must be a single value, not {_describe(value)}", value)
        if value.value is None:
            raise self.error(f"variable `{key}` has no value", value, hint=f'write `{key}: ""` for empty')
        return value.text or ""

    def platforms(self, node: Node) -> list[str]:
        return [name for item in self.items(node, "platforms") if (name := self.attempt(self.platform, item))]

    def platform(self, item: Node) -> str:
        name = self.text(item, "platforms")
        if name not in self.known_subdirs:
            import difflib  # only on the error path

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
        if _URL.match(prefix):
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
