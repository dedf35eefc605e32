"""``pmpm cache check PREFIX [NAME...]``: show that PREFIX's compiled packages come from their recipes.

Each compiled package is built again from the inputs PREFIX's record names (the same env file,
recipes and sources) in clean folders: a new cache folder whose build channel, build folders and
build prefixes start empty (only the downloads are shared: conda packages, repodata and source
archives, which are checked by their sha256 anyway), with ``--fresh`` so nothing comes from a
binary cache. Then, for each package, the rebuild is compared with the recorded package (its
sha256), with the copy in the local build channel, and with the files installed in PREFIX (their
relocation undone): identical, or the files that differ and, for ELF files, their sections (as
Guix's ``guix build --check`` and Nix's ``--check`` do for their builds).

Exit code 0 when everything is identical, 1 when something differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from pmpm import paths
from pmpm.build import compare
from pmpm.conda.engine import host_subdir
from pmpm.env.cache_lock import using_cache
from pmpm.errors import PmpmError
from pmpm.record.read import layout_of, record_path

Say = Callable[[str], None]
#: what the rebuild shares with the user's cache: downloads, never build outputs
_SHARED = ("pkgs", "repodata", "sources")


def run(prefix: Path, names: tuple[str, ...], say: Say, *, offline: bool = False) -> int:
    layout = layout_of(prefix)
    where = str(record_path(layout))
    try:
        record = json.loads(record_path(layout).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PmpmError(
            f"{prefix} has no readable pmpm record ({exc})",
            where=where,
            hint="check an environment made by `pmpm conda_install`",
        ) from None
    if layout.kind != "conda":
        raise PmpmError(
            "a system_install environment's packages are built in the environment itself: they can only "
            "be rebuilt there",
            where=where,
            hint="rebuild them with `pmpm system_install ... --fresh` and compare `pmpm verify` before "
            "and after",
        )
    compiled = {p["name"]: p for p in record.get("compiled_packages", [])}
    unknown = sorted(set(names) - compiled.keys())
    if unknown:
        raise PmpmError(
            f"not compiled packages of {prefix}: {', '.join(unknown)}",
            where=where,
            hint=f"it has: {', '.join(sorted(compiled)) or 'none'}",
        )
    if not compiled:
        say(f"{prefix} has no compiled packages: nothing to check")
        return 0
    recorded = record.get("env_file") or {}
    env_file = Path(recorded.get("path") or prefix / "missing-env-file")
    if not env_file.is_file() or _sha256(env_file) != recorded.get("sha256"):
        raise PmpmError(
            f"the env file {env_file} is not the one {prefix} was built from (missing or changed since)",
            where=where,
            hint="put the file back as it was, or run conda_install again and then check",
        )
    wanted = [compiled[n] for n in (names or sorted(compiled))]
    # the rebuild reads the user's downloads: `pmpm clean` must leave them alone meanwhile
    with using_cache(say), tempfile.TemporaryDirectory(prefix="pmpm-check-") as scratch:
        clean = Path(scratch)
        rebuilt = _rebuild(env_file, clean, paths.cache_root(), say, offline)
        by_name = {p["name"]: p for p in rebuilt}
        results = [
            _compare(package, by_name.get(package["name"]), Path(record["layout"]["prefix"]), clean, say)
            for package in wanted
        ]
    same = sum(results)
    say(f"{same} of {len(results)} compiled packages are identical when rebuilt")
    return 0 if same == len(results) else 1


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _rebuild(env_file: Path, clean: Path, cache: Path, say: Say, offline: bool) -> list[dict]:
    """Build the env file into a fresh prefix with a fresh cache folder; its compiled packages."""
    root = clean / "cache"
    root.mkdir()
    for name in _SHARED:
        if (cache / name).is_dir():
            (root / name).symlink_to(cache / name)
    target = clean / "prefix"
    say(f"rebuilding from {env_file} in clean folders ({clean})...")
    # a shared binary cache is neither read (it is a rebuild) nor written (it is only a check)
    env = {**os.environ, "PMPM_CACHE_DIR": str(root), "PMPM_BINARY_CACHE": "off"}
    env.pop("PMPM_LOG_DIR", None)
    argv = [sys.executable, "-m", "pmpm", "conda_install", str(target), "--file", str(env_file), "--fresh"]
    argv += ["--offline"] if offline else []
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise PmpmError(
            f"the rebuild failed:\n{tail}",
            hint="the build itself fails now (a source or tool changed?); run the same conda_install to see",
        )
    record = json.loads((target / "conda-meta" / "pmpm" / "record.json").read_text(encoding="utf-8"))
    return record.get("compiled_packages", [])


def _compare(old: dict, new: dict | None, prefix: Path, clean: Path, say: Say) -> bool:
    """Say how the rebuild of one package compares; True when everything is identical."""
    name = f"{old['name']} {old['version']}"
    if new is None or new["build_key"] != old["build_key"]:
        say(f"{name}: not comparable: {_why_not(old['name'], prefix, clean / 'prefix', new is None)}")
        return False
    filename = f"{old['name']}-{old['version']}-{old['build']}.conda"
    rebuilt = clean / "cache" / "channel" / host_subdir() / filename
    unpacked = clean / "unpacked" / old["name"]
    items = compare.unpack(rebuilt, unpacked)
    ok = new["package_sha256"] == old["package_sha256"]
    if ok:
        say(f"{name}: the rebuild is identical to the recorded package (sha256 {old['package_sha256']})")
    else:
        say(
            f"{name}: the rebuild differs from the recorded package "
            f"(sha256 {new['package_sha256']}, recorded {old['package_sha256']})"
        )
    cached = paths.build_channel() / host_subdir() / filename
    if cached.is_file() and _sha256(cached) != new["package_sha256"]:
        theirs = clean / "cached" / old["name"]
        their_items = compare.unpack(cached, theirs)
        lines = _differences(items, their_items.keys(), unpacked, lambda rel: compare.content(theirs, rel))
        lines += compare.info_differences(theirs, unpacked)  # metadata: in the package only
        _show(say, f"{name}: the copy in the build channel ({cached}) differs from the rebuild", lines)
        ok = False
    installed = _installed_items(prefix, old)
    lines = _differences(
        items,
        installed.keys(),
        unpacked,
        lambda rel: compare.as_built(prefix / rel, installed.get(rel, {}), str(prefix)),
    )
    if lines:
        _show(say, f"{name}: files in {prefix} that differ from the rebuild", lines)
        ok = False
    elif ok:
        say(f"{name}: the files installed in {prefix} ({len(items)}) match the rebuild")
    return ok


def _why_not(name: str, prefix: Path, rebuilt: Path, missing: bool) -> str:
    """Why the rebuild has another build key: the inputs that differ (``builds/NAME.json``)."""

    def inputs(where: Path) -> dict:
        try:
            return json.loads(paths.build_inputs_file(where, name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    old, new = inputs(prefix), inputs(rebuilt)
    if old.get("prefix") not in (None, "relocatable"):
        return f"it was built in {prefix} itself (too long for a padded build prefix), so only there"
    if missing:
        return "the env file no longer builds it"
    changed = sorted(k for k in old.keys() | new.keys() if k != "record" and old.get(k) != new.get(k))
    return f"its inputs differ from the recorded ones: {', '.join(changed) or 'unknown'} (see `pmpm plan`)"


def _installed_items(prefix: Path, package: dict) -> dict[str, dict]:
    meta = prefix / "conda-meta" / f"{package['name']}-{package['version']}-{package['build']}.json"
    try:
        paths = json.loads(meta.read_text(encoding="utf-8"))["paths_data"]["paths"]
    except (OSError, ValueError, KeyError):
        return {}
    return {item["_path"]: item for item in paths}


def _differences(rebuilt: dict[str, dict], other: Iterable[str], root: Path, read: Callable) -> list[str]:
    """A line per file that differs between the rebuild (unpacked in ``root``) and ``read``'s copy."""
    lines = []
    for rel in sorted(rebuilt.keys() | set(other)):
        line = compare.describe(rel, read(rel), compare.content(root, rel) if rel in rebuilt else None)
        if line is not None:
            lines.append(line)
    return lines


def _show(say: Say, head: str, lines: list[str]) -> None:
    say(head + ":")
    for line in lines:
        say(f"  {line}")
