"""The environment file, read into a typed model that remembers lines.

Users bring environment files written for conda, mamba, conda-lock or the original pmpm; anything
they can write there must either load or be rejected with ``file:line`` and what to write instead.
Everything downstream works from :class:`EnvSpec` and never looks at YAML again, so every check a
user can fail happens here, where the line numbers are still known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmpm.errors import PmpmError, located
from pmpm.yaml_lines import Node, parse_yaml

TOP_LEVEL_KEYS = ("name", "channels", "dependencies", "variables", "prefix", "platforms", "category", "_pmpm")
PMPM_KEYS = (
    "target",
    "recipes",
    "packages",
    "conda",
    "backend",
    "compilers",
    "mpi",
    "cache",
    "modules",
    "jupyter_kernel",
    "conda_prefix_name",
    "compile_prefix_name",
    "tests",
)
BACKENDS = ("rattler", "conda", "mamba", "micromamba")
COMPILER_KEYS = ("cc", "cxx", "fc")
MODULE_KEYS = ("lmod", "tcl", "name")
MPI_WORDS = ("none", "conda", "external")
MPI_EXTERNAL_KEYS = ("mpicc", "mpicxx", "mpifort")
PACKAGE_OPTION_TYPES = ("version", "path", "git", "ref", "target")
SELECTOR_FAMILIES = ("linux", "osx", "win", "unix")

# Keys of the original pmpm that have no counterpart: what the user should do instead.
_LEGACY_REJECTED = {
    "fast_update": "incremental rebuilds are automatic in pmpm; remove `fast_update`",
    "download_prefix_name": (
        "pmpm keeps downloaded sources in its own source cache; remove `download_prefix_name`"
    ),
    "sub_platform": (
        "pmpm keys builds by `target` and keeps sources in its own source cache; remove `sub_platform`"
    ),
    "nomkl": (
        "`nomkl` is a conda package, not a pmpm option; remove it here and add `- nomkl` to `dependencies`"
    ),
    "update": "updating is chosen on the command line in pmpm; remove `update` and run with `--update`",
}
_LEGACY_MAPPED = ("dependencies", "arch", "tune", "python_version", "skip_conda", "skip_test")

_PACKAGE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*$")
_ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://\S+$")
_SELECTOR = re.compile(r"^sel\((.*)\)$")


@dataclass(frozen=True)
class Dependency:
    """One conda match spec."""

    spec: str
    name: str
    channel: str | None
    line: int


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
    return _Reader(path, subdir, known_subdirs).read(root.value)


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


def _normalise_spec(text: str) -> str:
    """One canonical spacing, so `scipy   >=  1.5,  <2` prints and compares as `scipy >=1.5,<2`."""
    spec = " ".join(text.split())
    spec = re.sub(r"\s*([,|])\s*", r"\1", spec)
    return re.sub(r"([<>=!~])\s+(?=[0-9A-Za-z*])", r"\1", spec)


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
                raise _unknown_key(key, keys, f"`{what}`", self.path, value.line)
            result[key] = self.text(value, f"{what}.{key}")
        return result

    def local_path(self, text: str) -> Path:
        return (self.base / Path(text).expanduser()).resolve()

    # top level ------------------------------------------------------------------------------

    def read(self, top: dict[str, Node]) -> EnvSpec:
        for key, node in top.items():
            if key not in TOP_LEVEL_KEYS:
                raise _unknown_key(key, TOP_LEVEL_KEYS, "top-level", self.path, node.line)
        spec = EnvSpec(path=self.path)
        if "name" in top:
            spec.name = self.optional_text(top["name"], "name")
        if "prefix" in top:
            spec.prefix = self.optional_text(top["prefix"], "prefix")
        if "channels" in top:
            spec.channels, spec.nodefaults = self.channels(top["channels"])
        if "dependencies" in top:
            self.dependencies(top["dependencies"], spec)
        if "variables" in top:
            spec.variables_line = top["variables"].line
            spec.variables = self.variables(top["variables"])
        if "platforms" in top:
            spec.platforms = self.platforms(top["platforms"])
        if "category" in top:
            self.notes.append(
                f"`category: {top['category'].text}` (line {top['category'].line}) is a conda-lock "
                "grouping; pmpm installs every dependency and ignores it"
            )
        section = _PmpmReader(self).read(top["_pmpm"]) if "_pmpm" in top else _Section()
        spec.pmpm = section.fields
        if section.python_version is not None:
            self.add_python_version(spec, *section.python_version)
        spec.pmpm.notes = self.notes
        return spec

    def channels(self, node: Node) -> tuple[list[ChannelRef], bool]:
        channels: list[ChannelRef] = []
        nodefaults = False
        for item in self.items(node, "channels"):
            text = self.text(item, "channels").strip()
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
            result[key] = value.text or ""
        return result

    def platforms(self, node: Node) -> list[str]:
        result = []
        for item in self.items(node, "platforms"):
            name = self.text(item, "platforms")
            if name not in self.known_subdirs:
                import difflib  # only on the error path

                close = difflib.get_close_matches(name, self.known_subdirs, n=1)
                hint = f"did you mean `{close[0]}`?" if close else "use conda subdir names such as linux-64"
                raise self.error(f"unknown platform `{name}`", item, hint=hint)
            result.append(name)
        return result

    # dependencies ---------------------------------------------------------------------------

    def dependencies(self, node: Node, spec: EnvSpec) -> None:
        from rattler import MatchSpec  # lazy: py-rattler is slow to import
        from rattler.exceptions import InvalidMatchSpecError

        by_name: dict[str, int] = {}
        for item in self.items(node, "dependencies"):
            entry = self.dependency_entry(item, spec)
            if entry is None:
                continue
            text, line = entry
            written = _normalise_spec(text)
            try:
                match = MatchSpec(written, strict=False)
            except InvalidMatchSpecError as exc:
                reason = str(exc).splitlines()[0]
                hint = "write a conda match spec such as `numpy >=1.26` or `conda-forge::numpy=1.26`"
                if "{{" in written or "{%" in written:
                    hint = "this is a template placeholder; render the template before using the file"
                raise self.error(f"invalid package spec `{written}`: {reason}", line, hint=hint) from None
            dep = Dependency(written, match.name.normalized, self.channel_of(written, match), line)
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
        prefix = written.split("::", 1)[0].strip()
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
        if first.spec != dep.spec and dep.spec.lower() != dep.name and first.spec.lower() != first.name:
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
        from rattler import MatchSpec
        from rattler.exceptions import InvalidMatchSpecError

        text = f"python={version}"
        try:
            MatchSpec(text, strict=False)
        except InvalidMatchSpecError as exc:
            reason = str(exc).splitlines()[0]
            raise self.error(f"invalid `_pmpm.python_version: {version}`: {reason}", line) from None
        spec.dependencies.append(Dependency(text, "python", None, line))
        self.notes.append(
            f"`_pmpm.python_version: {version}` (line {line}) is read as the dependency `{text}`"
        )


@dataclass
class _Section:
    fields: PmpmSection = field(default_factory=PmpmSection)
    python_version: tuple[str, int] | None = None


class _PmpmReader:
    """Reads `_pmpm`, mapping the original pmpm's keys and refusing what has no counterpart."""

    def __init__(self, reader: _Reader) -> None:
        self.r = reader
        self.section = _Section()
        self.set_by: dict[str, tuple[str, int]] = {}
        self.arch: str | None = None
        self.tune: Node | None = None

    def set(self, field_name: str, value: Any, key: str, line: int) -> None:
        """Two keys (an old and a new spelling) setting one field is ambiguous: refuse it."""
        if field_name in self.set_by:
            other, other_line = self.set_by[field_name]
            raise self.r.error(
                f"`_pmpm.{key}` and `_pmpm.{other}` (line {other_line}) both set `{field_name}`",
                line,
                hint=f"keep only `{field_name}`",
            )
        self.set_by[field_name] = (key, line)
        setattr(self.section.fields, field_name, value)

    def note(self, text: str) -> None:
        self.r.notes.append(text)

    def read(self, node: Node) -> _Section:
        for key, value in self.r.mapping(node, "_pmpm").items():
            if key in _LEGACY_REJECTED:
                raise self.r.error(
                    f"`_pmpm.{key}` of the original pmpm is not supported", value, hint=_LEGACY_REJECTED[key]
                )
            if key in _LEGACY_MAPPED:
                getattr(self, f"legacy_{key}")(value)
            elif key in PMPM_KEYS:
                getattr(self, f"key_{key}")(value)
            else:
                raise _unknown_key(key, PMPM_KEYS, "`_pmpm`", self.r.path, value.line)
        if self.tune is not None:  # checked last: it is compared with `arch`, wherever that is written
            self.check_tune(self.tune)
        return self.section

    # current keys ---------------------------------------------------------------------------

    def key_target(self, node: Node) -> None:
        self.set("target", self.r.text(node, "_pmpm.target"), "target", node.line)

    def key_recipes(self, node: Node) -> None:
        folders = [
            self.r.local_path(self.r.text(item, "_pmpm.recipes"))
            for item in self.r.items(node, "_pmpm.recipes")
        ]
        self.set("recipes", folders, "recipes", node.line)

    def key_packages(self, node: Node) -> None:
        requests: list[PackageRequest] = []
        seen: dict[str, int] = {}
        for item in self.r.items(node, "_pmpm.packages"):
            request = self.package(item)
            if request.name in seen:
                raise self.r.error(
                    f"package `{request.name}` is listed twice in `_pmpm.packages` "
                    f"(lines {seen[request.name]} and {item.line})",
                    item,
                    hint="keep one entry and put all its options there",
                )
            seen[request.name] = item.line
            requests.append(request)
        self.set("packages", requests, "packages", node.line)

    def package(self, item: Node) -> PackageRequest:
        if item.is_mapping:
            if len(item.value) != 1:
                raise self.r.error(
                    "a `_pmpm.packages` entry must be a name or one `name: {options}` mapping",
                    item,
                    hint="start each package on its own `- ` line",
                )
            [(name, options_node)] = item.value.items()
            options = self.package_options(name, options_node)
        else:
            name = self.r.text(item, "_pmpm.packages")
            options = {}
            if "=" in name:
                base, _, ref = name.partition("=")
                raise self.r.error(
                    f"`{name}` is not a package name",
                    item,
                    hint=f"write `- {base}: {{ref: {ref}}}` (a git ref) or `{{version: {ref}}}`",
                )
        if not _PACKAGE_NAME.match(name):
            raise self.r.error(f"`{name}` is not a valid package name", item)
        return PackageRequest(name, options, item.line)

    def package_options(self, name: str, node: Node) -> dict[str, Any]:
        options: dict[str, Any] = {}
        for key, value in self.r.mapping(node, f"_pmpm.packages.{name}").items():
            what = f"_pmpm.packages.{name}.{key}"
            if key == "path":
                options[key] = self.r.local_path(self.r.text(value, what))
            elif key in PACKAGE_OPTION_TYPES:
                options[key] = self.r.text(value, what)
            else:
                options[key] = value.plain()  # recipe options; the recipe checks them
        if "path" in options and "git" in options:
            raise self.r.error(
                f"package `{name}` has both `path` and `git`", node, hint="build from one source: keep one"
            )
        return options

    def key_conda(self, node: Node) -> None:
        if isinstance(node.value, bool):
            self.set("conda", node.value, "conda", node.line)
            return
        backend = self.backend(node, "_pmpm.conda")
        self.set("backend", backend, "conda", node.line)
        self.note(f"`_pmpm.conda: {backend}` (line {node.line}) is read as `backend: {backend}`")

    def key_backend(self, node: Node) -> None:
        self.set("backend", self.backend(node, "_pmpm.backend"), "backend", node.line)

    def backend(self, node: Node, what: str) -> str:
        if not node.is_scalar or node.value is None or node.text not in BACKENDS:
            raise self.r.error(
                f"`{what}` must be one of {', '.join(BACKENDS)}, not {_describe(node)}",
                node,
                hint="or `conda: false` to build without a conda stack" if what == "_pmpm.conda" else None,
            )
        return node.text

    def key_compilers(self, node: Node) -> None:
        self.set(
            "compilers", self.r.string_map(node, "_pmpm.compilers", COMPILER_KEYS), "compilers", node.line
        )

    def key_modules(self, node: Node) -> None:
        self.set("modules", self.r.string_map(node, "_pmpm.modules", MODULE_KEYS), "modules", node.line)

    def key_mpi(self, node: Node) -> None:
        self.set("mpi", self.mpi(node), "mpi", node.line)

    def mpi(self, node: Node) -> str | dict[str, Any] | None:
        shapes = "`none`, `conda`, `external`, `{external: {mpicc: PATH}}` or `{module: NAME}`"
        if node.value is None:
            return None
        if node.is_scalar and node.text in MPI_WORDS:
            return node.text
        if node.is_mapping and len(node.value) == 1:
            [(key, value)] = node.value.items()
            if key == "module":
                return {"module": self.r.text(value, "_pmpm.mpi.module")}
            if key == "external":
                return {"external": self.r.string_map(value, "_pmpm.mpi.external", MPI_EXTERNAL_KEYS)}
        raise self.r.error(f"`_pmpm.mpi` must be {shapes}, not {_describe(node)}", node)

    def key_cache(self, node: Node) -> None:
        self.set("cache", self.r.optional_text(node, "_pmpm.cache"), "cache", node.line)

    def key_jupyter_kernel(self, node: Node) -> None:
        self.set("jupyter_kernel", self.r.boolean(node, "_pmpm.jupyter_kernel"), "jupyter_kernel", node.line)

    def key_tests(self, node: Node) -> None:
        self.set("tests", self.r.boolean(node, "_pmpm.tests"), "tests", node.line)

    def key_conda_prefix_name(self, node: Node) -> None:
        self.set(
            "conda_prefix_name", self.folder_name(node, "conda_prefix_name"), "conda_prefix_name", node.line
        )

    def key_compile_prefix_name(self, node: Node) -> None:
        name = self.folder_name(node, "compile_prefix_name")
        self.set("compile_prefix_name", name, "compile_prefix_name", node.line)

    def folder_name(self, node: Node, key: str) -> str:
        name = self.r.text(node, f"_pmpm.{key}")
        if "/" in name or "\\" in name or name in (".", ".."):
            raise self.r.error(f"`_pmpm.{key}` must be a plain folder name, not `{name}`", node)
        return name

    # keys of the original pmpm ----------------------------------------------------------------

    def legacy_dependencies(self, node: Node) -> None:
        requests: list[PackageRequest] = []
        for item in self.r.items(node, "_pmpm.dependencies"):
            text = self.r.text(item, "_pmpm.dependencies")
            name, _, ref = (part.strip() for part in text.partition("="))
            if not _PACKAGE_NAME.match(name) or ("=" in text and not ref):
                raise self.r.error(f"`{text}` is not `name` or `name=git-ref`", item)
            requests.append(PackageRequest(name, {"ref": ref} if ref else {}, item.line))
        self.set("packages", requests, "dependencies", node.line)
        self.note(f"`_pmpm.dependencies` (line {node.line}) of the original pmpm is read as `_pmpm.packages`")

    def legacy_arch(self, node: Node) -> None:
        arch = self.arch = self.r.text(node, "_pmpm.arch")
        target = "host" if arch == "native" else arch.replace("-", "_")
        self.set("target", target, "arch", node.line)
        self.note(f"`_pmpm.arch: {arch}` (line {node.line}) is read as `target: {target}`")

    def legacy_tune(self, node: Node) -> None:
        self.tune = node

    def check_tune(self, node: Node) -> None:
        tune = self.r.text(node, "_pmpm.tune")
        if tune not in ("generic", "native") and tune != self.arch:
            raise self.r.error(
                f"`_pmpm.tune: {tune}` is not supported: pmpm derives -mtune from the target",
                node,
                hint=f"set `_pmpm: {{target: {tune.replace('-', '_')}}}` instead of `tune`",
            )
        self.note(f"`_pmpm.tune: {tune}` (line {node.line}) is dropped: pmpm takes -mtune from the target")

    def legacy_python_version(self, node: Node) -> None:
        self.section.python_version = (self.r.text(node, "_pmpm.python_version"), node.line)

    def legacy_skip_conda(self, node: Node) -> None:
        skip = self.r.boolean(node, "_pmpm.skip_conda")
        self.set("conda", not skip, "skip_conda", node.line)
        self.note(
            f"`_pmpm.skip_conda: {node.text}` (line {node.line}) is read as `conda: {str(not skip).lower()}`"
        )

    def legacy_skip_test(self, node: Node) -> None:
        skip = self.r.boolean(node, "_pmpm.skip_test")
        self.set("tests", not skip, "skip_test", node.line)
        self.note(
            f"`_pmpm.skip_test: {node.text}` (line {node.line}) is read as `tests: {str(not skip).lower()}`"
        )
