"""Provenance beside the artifact: what a compiled package was made from, and the log of its build.

Each compiled ``.conda`` carries, under ``info/`` (where conda-build keeps ``info/recipe/meta.yaml``
and rattler-build its rendered recipe):

- ``info/recipe/rendered_recipe.yaml``: the recipe as rendered for this build (every template expanded,
  options resolved), written from exactly what the build key hashes of it: the build prefix and
  PREFIX as ``${prefix}``, and the source by its identity (``sha256:``, ``git:``, ``tree:``), not
  where it was fetched from (a mirror, a local path), which the key leaves out;
- ``info/pmpm/build-inputs.json``: the :class:`~pmpm.build.inputs.BuildInputs` as stored beside an
  installed package (``conda-meta/pmpm/builds/NAME.json`` without its ``record`` details), with
  its ``format``; its digest is the build key.

Both are functions of the build key alone, so two builds with the same key still give
byte-identical packages. Like every ``info/`` file they are not listed in ``info/paths.json``
(conda-build and rattler-build list only the files installed into the prefix).

The build's log (its commands, their output and the recipe's tests) is kept beside the package in
the build channel (``NAME-VERSION-BUILD.log`` next to ``NAME-VERSION-BUILD.conda``), travels with
it to a shared cache, and is copied into the prefix when the package is installed, from a build
or from the cache: ``PREFIX/conda-meta/pmpm/logs/NAME-VERSION-BUILD.log``. pmpm's log folder is a
cache (``pmpm clean`` empties it); the prefix's copy lives as long as the package does, and is
journalled with the rest of ``conda-meta``, so a failed run leaves the prefix's logs as they were.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pmpm import paths
from pmpm.build.inputs import BuildInputs
from pmpm.build.recipe import Recipe

#: the provenance files' names under ``info/``
RECIPE_FILE = "recipe/rendered_recipe.yaml"
INPUTS_FILE = "pmpm/build-inputs.json"

_SOURCE_KINDS = ("path", "git", "url", "pypi")


def info_files(recipe: Recipe, inputs: BuildInputs, neutral: Callable[[Any], Any]) -> dict[str, str]:
    """The provenance files of one build, by their name under ``info/``. ``neutral`` writes the
    build prefix and PREFIX as ``${prefix}``, as the build key's inputs have them."""
    return {RECIPE_FILE: rendered_recipe(recipe, inputs, neutral), INPUTS_FILE: inputs_text(inputs)}


def rendered_recipe(recipe: Recipe, inputs: BuildInputs, neutral: Callable[[Any], Any]) -> str:
    """The rendered recipe as YAML, from :meth:`Recipe.keyed` (what the key hashes), with the
    source given by its identity."""
    data = json.loads(neutral(recipe.keyed()))
    given = data.pop("source")
    kind = next((k for k in _SOURCE_KINDS if k in given), None)
    data["source"] = {"kind": kind, "identity": inputs.source}
    header = (
        f"# {recipe.name} {recipe.version} as rendered for this build by pmpm: templates expanded, "
        "the build prefix written ${prefix},\n# the source by its identity (where it was fetched "
        "from is no input). The build inputs: info/pmpm/build-inputs.json\n"
    )
    return header + yaml.dump(
        data, Dumper=_dumper(), sort_keys=True, default_flow_style=False, allow_unicode=True, width=100
    )


def _dumper():
    """YAML's safe dumper writing a text of several lines (a script) as a ``|`` block, as the
    recipe's author wrote it."""

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper, value: str):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper


def inputs_text(inputs: BuildInputs) -> str:
    """The build inputs as stored: :meth:`BuildInputs.as_dict` (with ``format``), canonical JSON."""
    return json.dumps(inputs.as_dict(), indent=1, sort_keys=True) + "\n"


# -- the build log --------------------------------------------------------------------------------


def keep_log(package: Path, log: Path) -> None:
    """Keep the build's log beside its package in the build channel."""
    _copy(log, paths.package_log(package))


def install_log(prefix: Path, package: Path) -> Path | None:
    """Copy the log kept beside ``package`` into PREFIX (replacing the log of the package it
    replaces); None when the package came without one (built by an older pmpm)."""
    name, version, build = package.name.removesuffix(".conda").rsplit("-", 2)
    drop_logs(prefix, name)
    log = paths.package_log(package)
    if not log.is_file():
        return None
    dest = paths.installed_log(prefix, name, version, build)
    _copy(log, dest)
    return dest


def drop_logs(prefix: Path, name: str) -> None:
    """Remove the kept logs of the package ``name`` (removed, or replaced by another build)."""
    folder = paths.installed_logs_dir(prefix)
    if folder.is_dir():
        for log in folder.glob(f"{name}-*-*.log"):
            if log.name.removesuffix(".log").rsplit("-", 2)[0] == name:
                log.unlink(missing_ok=True)


def installed_log(prefix: Path, name: str, version: str, build: str) -> Path | None:
    """The log kept in PREFIX of this build of ``name``, if there is one."""
    log = paths.installed_log(prefix, name, version, build)
    return log if log.is_file() else None


def _copy(source: Path, dest: Path) -> None:
    """Copy under a temporary name and rename: a reader never sees half a log."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
