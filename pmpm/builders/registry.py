"""Finding build systems: every builder, pmpm's own included, comes from the ``pmpm.builders``
entry-point group, so a site plugin is found, named and detected exactly like a built-in one.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from pathlib import Path

from pmpm.build.inputs import distribution_files, distribution_of
from pmpm.builders import Builder
from pmpm.errors import PmpmError

GROUP = "pmpm.builders"

# Detection order. Python first: numpy-style packages carry a meson.build or CMakeLists.txt for
# their build backend but must still go through pip. Then the generators that also ship a
# configure or Makefile for convenience, and plain Makefiles last since many trees have one.
# Plugins are tried after these, by name.
DETECT_ORDER = ("python", "meson", "cmake", "autotools", "make")


@functools.cache
def _entry_points() -> dict:
    """Name to entry point; the same plugin seen twice (an editable install beside a stale
    one, say): the first by sorted name wins."""
    found: dict = {}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        found.setdefault(ep.name, ep)
    return found


@functools.cache
def builders() -> dict[str, Builder]:
    """Name to builder instance, loaded once; an entry point may name a class or an instance."""
    found: dict[str, Builder] = {}
    for ep in _entry_points().values():
        try:
            obj = ep.load()
            found[ep.name] = obj() if isinstance(obj, type) else obj
        except Exception as exc:
            raise PmpmError(
                f"build system plugin {ep.name!r} ({ep.value}) failed to load: {exc}",
                where=f"entry point group {GROUP}",
                hint="fix or uninstall the package that provides it",
            ) from exc
    return found


def provider(name: str) -> str:
    """``"distribution version"`` that provides builder ``name``: part of the build key."""
    return distribution_of(_entry_points()[name])


def watched_files() -> list[str]:
    """The builder plugins' metadata and modules, for the no-op check."""
    return [f for ep in _entry_points().values() for f in distribution_files(ep)]


def available() -> str:
    return ", ".join(sorted(builders())) or "none"


def get(name: str, *, where: str | None = None) -> Builder:
    """The builder a recipe names; ``where`` locates the recipe line for the error."""
    try:
        return builders()[name]
    except KeyError:
        raise PmpmError(
            f"unknown build system {name!r}",
            where=where,
            hint=f"use one of: {available()} (plugins add more through the {GROUP} entry points)",
        ) from None


def detect(source_dir: Path) -> Builder:
    """The first builder that recognises the tree, for recipes that name none."""
    table = builders()
    order = [n for n in DETECT_ORDER if n in table] + sorted(set(table) - set(DETECT_ORDER))
    for name in order:
        if table[name].supports(source_dir):
            return table[name]
    raise PmpmError(
        "cannot tell which build system this source tree uses",
        where=str(source_dir),
        hint=f"name one in the recipe ({available()}), or give a script",
    )
