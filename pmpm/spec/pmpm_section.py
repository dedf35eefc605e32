"""The `_pmpm` section of an env file: pmpm's own settings, and the original pmpm's keys.

Current keys are validated strictly (an unknown key names its line and the closest valid
one); keys of the original pmpm are mapped to their counterparts with a note, or refused with
what to write instead. Every problem is handed to the env-file reader, which reports them all
together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pmpm.errors import located
from pmpm.spec.model import PackageRequest, PmpmSection
from pmpm.spec.targets import canonical_target, close_targets
from pmpm.spec.yaml_lines import Node, describe, unknown_key

if TYPE_CHECKING:
    from pmpm.spec.reader import _Reader

PMPM_KEYS = (
    "target",
    "targets",
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
    "slurm",
)
BACKENDS = ("rattler", "conda", "mamba", "micromamba")
COMPILER_KEYS = ("cc", "cxx", "fc")
MODULE_KEYS = ("lmod", "tcl", "name")
MPI_WORDS = ("none", "conda", "external")
MPI_EXTERNAL_KEYS = ("mpicc", "mpicxx", "mpifort")
PACKAGE_OPTION_TYPES = ("version", "path", "git", "ref", "target", "url", "sha256", "pypi")
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


@dataclass
class Section:
    fields: PmpmSection = field(default_factory=PmpmSection)
    python_version: tuple[str, int] | None = None


class PmpmReader:
    """Reads `_pmpm`, mapping the original pmpm's keys and refusing what has no counterpart."""

    def __init__(self, reader: _Reader) -> None:
        self.r = reader
        self.section = Section()
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

    def read(self, node: Node) -> Section:
        for key, value in (self.r.attempt(self.r.mapping, node, "_pmpm") or {}).items():
            self.r.attempt(self.key, key, value)
        if self.tune is not None:  # checked last: it is compared with `arch`, wherever that is written
            self.r.attempt(self.check_tune, self.tune)
        if "targets" in self.set_by and "target" in self.set_by:
            key, line = self.set_by["target"]
            self.r.problems.append(
                self.r.error(
                    f"`_pmpm.targets` and `_pmpm.{key}` (line {line}) are both given",
                    self.set_by["targets"][1],
                    hint=f"list every target under `targets` (one entry is one target) and drop `{key}`",
                )
            )
        return self.section

    def key(self, key: str, value: Node) -> None:
        if key in _LEGACY_REJECTED:
            raise self.r.error(
                f"`_pmpm.{key}` of the original pmpm is not supported", value, hint=_LEGACY_REJECTED[key]
            )
        if key in _LEGACY_MAPPED:
            getattr(self, f"legacy_{key}")(value)
        elif key in PMPM_KEYS:
            getattr(self, f"key_{key}")(value)
        else:
            raise unknown_key(key, PMPM_KEYS, "`_pmpm`", self.r.path, value.line)

    # current keys ---------------------------------------------------------------------------

    def key_target(self, node: Node) -> None:
        self.set("target", self.r.text(node, "_pmpm.target"), "target", node.line)

    def key_targets(self, node: Node) -> None:
        """A compiled stack per target: archspec names (``host`` is this machine's), each once."""
        names: list[str] = []
        seen: dict[str, int] = {}
        for item in self.r.items(node, "_pmpm.targets"):
            written = self.r.text(item, "_pmpm.targets")
            name = canonical_target(written)
            if name is None:
                raise self.r.error(
                    f"unknown target `{written}` in `_pmpm.targets`" + close_targets(written),
                    item,
                    hint="`pmpm host --targets` lists every known target; `host` means this machine",
                )
            if name in seen:
                said = f"`{written}` ({name} here)" if name != written else f"`{written}`"
                raise self.r.error(
                    f"target {said} is listed twice in `_pmpm.targets` (lines {seen[name]} and {item.line})",
                    item,
                    hint="list each target once",
                )
            seen[name] = item.line
            names.append(name)
        if not names:
            raise self.r.error(
                "`_pmpm.targets` is empty", node, hint="list one target or more, or drop the key"
            )
        self.set("targets", names, "targets", node.line)
        self.section.fields.targets_line = node.line

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
            request = self.r.attempt(self.package, item)
            if request is None:
                continue
            if request.name in seen:
                self.r.problems.append(
                    self.r.error(
                        f"package `{request.name}` is listed twice in `_pmpm.packages` "
                        f"(lines {seen[request.name]} and {item.line})",
                        item,
                        hint="keep one entry and put all its options there",
                    )
                )
                continue
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
                f"`{what}` must be one of {', '.join(BACKENDS)}, not {describe(node)}",
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
        raise self.r.error(f"`_pmpm.mpi` must be {shapes}, not {describe(node)}", node)

    def key_cache(self, node: Node) -> None:
        self.set("cache", self.r.optional_text(node, "_pmpm.cache"), "cache", node.line)

    def key_jupyter_kernel(self, node: Node) -> None:
        self.set("jupyter_kernel", self.r.boolean(node, "_pmpm.jupyter_kernel"), "jupyter_kernel", node.line)

    def key_tests(self, node: Node) -> None:
        self.set("tests", self.r.boolean(node, "_pmpm.tests"), "tests", node.line)

    def key_slurm(self, node: Node) -> None:
        # archspec and the Slurm settings: only for env files that have the key
        from pmpm.cluster.settings import SlurmSettings

        where = located(self.r.path, node.line)
        keys = node.value.items() if node.is_mapping else ()
        lines = {str(key): located(self.r.path, value.line) for key, value in keys}
        self.set("slurm", SlurmSettings.from_mapping(node.plain(), where, lines), "slurm", node.line)

    def key_conda_prefix_name(self, node: Node) -> None:
        self.set(
            "conda_prefix_name", self.folder_name(node, "conda_prefix_name"), "conda_prefix_name", node.line
        )

    def key_compile_prefix_name(self, node: Node) -> None:
        name = self.folder_name(node, "compile_prefix_name")
        self.set("compile_prefix_name", name, "compile_prefix_name", node.line)

    def folder_name(self, node: Node, key: str) -> str:
        if node.is_scalar and node.value == "":  # what the original pmpm saved for one prefix
            self.note(
                f"`_pmpm.{key}: ''` (line {node.line}) of the original pmpm means one prefix for the "
                "conda and compiled packages, which is what `pmpm conda_install` makes "
                "(`pmpm system_install` needs a folder name here)"
            )
            return ""
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
