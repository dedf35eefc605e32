"""``pmpm recipes list|show`` and ``pmpm host``: read-only views for users writing env files.

Each prints text for a person or, with ``--json``, the documented document of
:mod:`pmpm.commands.jsonout` (keys in ``docs/json.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pmpm.build.recipe import RecipeBook, RecipeSource, load_data
from pmpm.commands import jsonout
from pmpm.errors import PmpmError
from pmpm.host.detect import ALLOW_FOREIGN, SEARCH, compiler_flags, detect_host, known_targets, resolve_target
from pmpm.host.mpi.choice import choose_mpi, decide, find_mpis
from pmpm.host.target import host_microarchitecture

Say = Callable[[str], None]


def _plugin_distribution(source: RecipeSource) -> dict[str, str] | None:
    """The distribution that installed a plugin recipe: its version is the recipe's release."""
    dist = getattr(source.plugin, "dist", None) if source.plugin is not None else None
    return {"name": dist.name, "version": dist.version} if dist is not None else None


def recipe_rows(folders: list[Path]) -> list[dict[str, Any]]:
    """One row per visible recipe, in name order; a broken recipe is a row saying so."""
    rows = []
    for name, source in sorted(RecipeBook(folders).sources().items()):
        row: dict[str, Any] = {"name": name, "origin": source.origin, "plugin": None, "error": None}
        if source.plugin is not None:
            # a plugin computes its recipe from a build's context: its release is what it has
            dist = _plugin_distribution(source)
            row.update(plugin=dist, version=dist["version"] if dist else None, system="plugin")
            rows.append(row)
            continue
        try:
            data = load_data(source, {})
        except Exception as exc:  # a broken recipe must not hide the others
            row.update(version=None, system=None, error=str(exc))
            rows.append(row)
            continue
        row.update(
            version=str(data.get("version", "?")), system=(data.get("build") or {}).get("system", "auto")
        )
        rows.append(row)
    return rows


def recipes_list(folders: list[Path], say: Say, *, as_json: bool = False) -> int:
    rows = recipe_rows(folders)
    if as_json:
        jsonout.emit("recipes list", {"recipes": rows}, say)
        return 0
    if not rows:
        say("no recipes found")
        return 0
    cells = []
    for row in rows:
        origin = row["origin"]
        if row["plugin"]:
            origin += f" ({row['plugin']['name']} {row['plugin']['version']})"
        if row["error"]:
            origin += f" (unreadable: {row['error']})"
        cells.append((row["name"], row["version"] or "?", row["system"] or "?", origin))
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    for cell in cells:
        say("  ".join(text.ljust(widths[i]) for i, text in enumerate(cell[:3])) + "  " + cell[3])
    return 0


def recipes_show(name: str, folders: list[Path], say: Say, *, as_json: bool = False) -> int:
    source = RecipeBook(folders).find(name)
    if as_json:
        data = {
            "name": name,
            "origin": source.origin,
            "text": source.text,
            "plugin": _plugin_distribution(source),
        }
        jsonout.emit("recipes show", data, say)
        return 0
    say(f"# {source.origin}")
    say(source.text.rstrip() if source.text is not None else f"(recipe computed by {source.origin})")
    return 0


def host_report(
    target: str,
    compilers: dict[str, str] | None,
    say: Say,
    *,
    targets: bool = False,
    prefix: Path | None = None,
    as_json: bool = False,
) -> int:
    if targets:
        if as_json:
            jsonout.emit("host", {"targets": known_targets()}, say)
        else:
            for name in known_targets():
                say(name)
        return 0
    conda_bin = Path(prefix).absolute() / "bin" if prefix is not None else None
    wanted, here = resolve_target(target), host_microarchitecture()
    runs_here = wanted == here or wanted < here
    # only displayed, never built for: any known target is shown, with whether it runs here
    env = {**os.environ, ALLOW_FOREIGN: "1"}
    host = detect_host(target, compilers, env=env, conda_bin=conda_bin)
    mpis = find_mpis(prefix=prefix)
    _, why = choose_mpi(None, prefix=prefix)
    system_why = None
    if prefix is not None:
        system_why = decide(None, system=True, base=Path(prefix).absolute(), prefix=Path(prefix)).reason
    if as_json:
        jsonout.emit("host", _host_document(host, runs_here, mpis, why, system_why), say)
        return 0
    for key, value in host.describe():
        say(f"{key:<12} {value}")
    if not runs_here:
        say(f"{'runs here':<12} no: builds for it need {ALLOW_FOREIGN}=1 (their tests cannot run here)")
    say(f"{'compilers':<12} {_compiler_choice(host, conda_bin, compilers or {})}")
    for mpi in mpis:
        for key, value in mpi.describe():
            say(f"{key:<12} {value}")
    if not mpis:
        say(f"{'mpi':<12} none found (no mpicc on PATH{' or in PREFIX/bin' if prefix else ''})")
    say(f"{'mpi chosen':<12} {why}")
    if system_why is not None:
        say(f"{'  system':<12} {system_why} (system_install with PREFIX as its conda stack)")
    return 0


def _host_document(host, runs_here: bool, mpis: list, why: str, system_why: str | None) -> dict[str, Any]:
    found = {}  # by language: cc, cxx, fc
    for lang, compiler in sorted(host.compilers.items()):
        entry: dict[str, Any] = {
            "vendor": compiler.vendor,
            "version": compiler.version,
            "path": compiler.path,
        }
        try:
            entry.update(flags=compiler_flags(host.microarchitecture, compiler), flags_error=None)
        except PmpmError as err:
            entry.update(flags=None, flags_error=err.message)
        found[lang] = entry
    return {
        "target": host.target,
        "detected": host.detected,
        "runs_here": runs_here,
        "vendor": host.vendor,
        "family": host.family,
        "features": list(host.features),
        "compilers": found,
        "mpis": [mpi.as_template() for mpi in mpis],
        "mpi_chosen": why,
        "mpi_system_install": system_why,
    }


def _compiler_choice(host, conda_bin: Path | None, named: dict[str, str]) -> str:
    """Why each compiler was chosen, as conda_install would choose them; system_install skips
    conda's and takes the host's."""
    reasons = []
    for lang, compiler in sorted(host.compilers.items()):
        if lang in named:
            why = "named"
        elif conda_bin is not None and Path(compiler.path).parent == conda_bin:
            why = "conda's, in PREFIX/bin (system_install uses the host's instead)"
        else:
            why = f"first that works on PATH of {', '.join(SEARCH[lang])}"
        reasons.append(f"{lang}: {why}")
    return "; ".join(reasons) or "none found"
