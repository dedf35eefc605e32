"""Everything that can change a compiled package's bits, as one frozen, versioned value.

The build key is the digest of a ``BuildInputs``; it is stored beside the installed package
(``conda-meta/pmpm/builds/NAME.json``, the record's details beside it), and ``pmpm plan`` says why
a package is rebuilt by comparing the stored value with the new one field by field. A field added
here therefore joins the key, the stored inputs and the plan's reasons at once; ``FORMAT`` is
raised when the meaning of a field changes, so older keys never match by accident.

Plugins are part of it: the distribution (name and version) a recipe plugin or a builder plugin
comes from, and the commands the builder produces for this build, so upgrading or editing a
plugin rebuilds what it built and the binary cache stops serving its old builds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from pmpm.errors import PmpmError

#: raised when a field's meaning changes (2: plugins and builder commands joined the key)
FORMAT = 2


def digest(value: Any) -> str:
    """sha256 of the canonical JSON of ``value``."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class BuildInputs:
    """The inputs of one build; paths of the build prefix are written as ``${prefix}``."""

    recipe: str  # digest of the rendered recipe (what a plugin returned, for plugin recipes)
    recipe_plugin: str | None  # "distribution version" of the recipe's plugin; None for YAML files
    builder: dict[str, str]  # name, providing distribution + version, digest of its commands
    source: str  # "sha256:...", "git:<commit>", "tree:..."
    flags: dict[str, str]
    compilers: dict[str, str]  # language -> "vendor version path (--version line)"
    mpi: str | None  # the MPI's identity, when the recipe uses it
    python: str | None  # the interpreter's identity, when the recipe uses it
    target: str
    options: dict[str, Any]
    prefix: str  # "relocatable", or the PREFIX a non-relocatable build is made for
    recipes: dict[str, str]  # required recipe -> its build key
    conda: dict[str, str]  # conda requirement -> "version-build"
    format: int = FORMAT

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def key(self) -> str:
        return digest(self.as_dict())

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> BuildInputs:
        """The inputs as stored (:meth:`as_dict`, with keys of its own beside them, such as the
        record's ``record`` details), read back. Inputs of an older format read with the fields
        it lacked left empty, so :meth:`reasons` says the format changed; a format this pmpm does
        not know (a newer pmpm's) is an error."""
        if not isinstance(data, dict):
            raise PmpmError("these are not a compiled package's build inputs", where=where)
        version = data.get("format", 1)
        if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= FORMAT:
            raise PmpmError(
                f"build inputs format {version!r} is not one this pmpm reads (1 to {FORMAT})",
                where=where,
                hint="they were written by a newer pmpm: use it, or build the package again with this "
                "one (`pmpm conda_install PREFIX --rebuild NAME`)",
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in data:
                values[f.name] = data[f.name]
            elif version == FORMAT and f.default is MISSING:
                raise PmpmError(f"the build inputs lack {f.name!r}", where=where, hint=_REWRITE)
            else:  # a field an older format did not have
                values[f.name] = None if f.default is MISSING else f.default
        values["format"] = version
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> BuildInputs | None:
        """The inputs stored at ``path``, or None when there are none (or not valid JSON: then
        the package is simply built again)."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return cls.from_dict(data, where=str(path))

    def reasons(self, old: BuildInputs | dict[str, Any] | None) -> list[str]:
        """Why a build with these inputs replaces one made with ``old`` (as stored, or read
        back): the fields that differ."""
        if old is None:
            return []
        if isinstance(old, dict):
            old = BuildInputs.from_dict(old, where="the stored build inputs")
        if old.format != self.format:
            return ["pmpm's build format changed"]
        reasons: list[str] = []
        for f in fields(self):
            before, now = getattr(old, f.name), getattr(self, f.name)
            if before != now:
                reasons += _REASONS.get(f.name, _plain(f.name))(before, now)
        if len(reasons) > 1 and _COMMANDS in reasons:
            reasons.remove(_COMMANDS)  # the other reasons say why the commands differ (flags...)
        return reasons or ["inputs changed"]


_REWRITE = "build the package again: `pmpm conda_install PREFIX --rebuild NAME`"


def _plain(label: str):
    return lambda before, now: [label]


def _arrow(label: str):
    return lambda before, now: [f"{label} ({before} -> {now})"]


_COMMANDS = "build system's commands changed"


def _builder(before: Any, now: dict[str, str]) -> list[str]:
    before = before if isinstance(before, dict) else {}
    if before.get("name") != now.get("name") or before.get("provider") != now.get("provider"):
        was = f"{before.get('name')} from {before.get('provider')}"
        return [f"build system changed ({was} -> {now.get('name')} from {now.get('provider')})"]
    return [_COMMANDS]


def _each(label: str, show: bool):
    def reasons(before: Any, now: dict[str, str]) -> list[str]:
        before = before if isinstance(before, dict) else {}
        out = []
        for name in sorted({*before, *now}):
            if before.get(name) != now.get(name):
                out.append(
                    label.format(name=name) + (f" ({before.get(name)} -> {now.get(name)})" if show else "")
                )
        return out

    return reasons


_REASONS = {
    "recipe": _plain("recipe changed"),
    "recipe_plugin": _arrow("recipe plugin changed"),
    "builder": _builder,
    "source": _arrow("source changed"),
    "flags": _plain("flags changed"),
    "compilers": _plain("compiler changed"),
    "mpi": _plain("MPI changed"),
    "python": _arrow("python changed"),
    "target": _arrow("target changed"),
    "options": _plain("options changed"),
    "prefix": _plain("prefix moved"),
    "recipes": _each("dependency {name} rebuilt", show=False),
    "conda": _each("conda package {name} changed", show=True),
}


def builder_identity(recipe: Any, tree: Any, ctx: Any, neutral: Callable[[Any], Any]) -> dict[str, str]:
    """Which build system builds the package, from which distribution, and a digest of the
    commands it gives for ``ctx`` (made with placeholder folders; ``neutral`` writes the build
    prefix as a token): a builder plugin that changes its commands, or is upgraded, changes the
    key. A recipe naming no build system is detected on its local tree (``tree``), or else once
    unpacked: then every builder counts."""
    from pmpm.builders import registry  # it imports this module (for the plugins' identity)

    if recipe.system:
        names = [registry.get(recipe.system, where=recipe.origin).name]
    elif tree is not None:
        names = [registry.detect(tree).name]
    else:
        names = sorted(registry.builders())
    commands = []
    for name in names:
        try:
            steps = registry.builders()[name].steps(ctx)
        except PmpmError:
            if len(names) > 1:  # e.g. the script builder without a script: not this one
                continue
            raise
        except Exception as exc:
            raise PmpmError(
                f"build system {name!r} failed to give its commands: {exc!r}",
                where=recipe.origin,
                hint=f"fix or uninstall the plugin that provides it ({registry.provider(name)})",
            ) from None
        commands.append(
            [name, [[s.name, [str(a) for a in s.argv], str(s.cwd), s.env, s.shell] for s in steps]]
        )
    return {
        "name": names[0] if len(names) == 1 else "detected",
        "provider": ", ".join(sorted({registry.provider(n) for n in names})),
        "commands": digest(neutral(commands)),
    }


def distribution_of(entry_point: Any) -> str:
    """``"name version"`` of the distribution that provides an entry point."""
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return f"{entry_point.value} (no distribution)"
    return _name_version(dist)


@functools.cache
def _name_version(dist: Any) -> str:
    """Once per distribution and run: each ``metadata`` read parses its METADATA file again,
    and every package's key asks for its builder's."""
    metadata = dist.metadata
    return f"{metadata['Name']} {metadata['Version']}"


def distribution_files(entry_point: Any) -> list[str]:
    """Files whose change means the plugin changed: its distribution's metadata (the version;
    an upgrade replaces the folder) and the module the entry point names, once loaded.
    Watched by the no-op check with a stat each, so it stays cheap."""
    files = []
    path = getattr(getattr(entry_point, "dist", None), "_path", None)
    if path is not None:
        files += [str(path / "METADATA"), str(path / "entry_points.txt")]
    module = sys.modules.get(entry_point.module)
    if module is not None and getattr(module, "__file__", None):
        files.append(str(module.__file__))
    return files
