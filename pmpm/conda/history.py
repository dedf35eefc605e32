"""Write ``conda-meta/history`` the way conda does, so conda knows what the user asked for.

conda reads its requested specs from this file only (``History.get_requested_specs_map``): with
an empty history a later ``conda install`` treats every package of a pmpm prefix as a mere
dependency, free to change or remove, and ``conda env export --from-history`` finds nothing.
Each pmpm run that changes a prefix appends one entry as conda writes it::

    ==> 2026-12-01 10:00:00 <==
    # cmd: pmpm conda_install /apps/x --file environment.yml
    # conda version: 3.8.0
    -file:///chan/linux-64::libdemo-1.0-0
    +file:///chan/linux-64::libdemo-2.0-0
    # remove specs: ['oldthing']
    # update specs: ['libdemo >=2', 'hello']

``# conda version`` is read by conda only to refuse running after a newer conda; pmpm writes
3.8.0 as libmamba does, a version every conda accepts.
"""

from __future__ import annotations

import ast
import re
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from pmpm import paths
from pmpm.conda.engine import installed_records
from pmpm.conda.meta import spec_name

#: the conda version that conda's downgrade check accepts from any other tool (libmamba's too)
CONDA_VERSION = "3.8.0"
_SPECS = re.compile(r"#\s*(\w+)\s*specs:\s*(\[.*\])\s*$")
_DEFAULTS = re.compile(r"^https?://repo\.anaconda\.com/pkgs/(main|r|msys2)/?$")


def path(prefix: Path) -> Path:
    return paths.conda_history(prefix)


def dist_str(record, alias: str) -> str:
    """conda's ``PrefixRecord.dist_str()``: ``channel/subdir::name-version-build``, the channel
    by its canonical name (``conda-forge`` under the channel alias, else its URL)."""
    channel = str(record.channel or record.url.rsplit("/", 2)[0]).rstrip("/")
    subdir = record.subdir
    if channel.endswith("/" + subdir):
        channel = channel[: -len(subdir) - 1]
    if _DEFAULTS.match(channel):
        channel = "defaults"
    elif channel.startswith(alias.rstrip("/") + "/"):
        channel = channel[len(alias.rstrip("/")) + 1 :]
    return f"{channel}/{subdir}::{record.name.normalized}-{record.version}-{record.build}"


def requested(prefix: Path) -> dict[str, str]:
    """The specs the history says were asked for, by package name (conda's reading of it)."""
    try:
        lines = path(prefix).read_text(errors="replace").splitlines()
    except OSError:
        return {}
    specs: dict[str, str] = {}
    for line in lines:
        match = _SPECS.match(line)
        if not match or match.group(1) not in ("update", "install", "create", "remove", "uninstall"):
            continue
        try:
            listed = ast.literal_eval(match.group(2))
        except (ValueError, SyntaxError):
            continue
        for spec in listed:
            name = spec_name(str(spec))
            if name is None:
                continue
            if match.group(1) in ("remove", "uninstall"):
                specs.pop(name, None)
            else:
                specs[name] = str(spec)
    return specs


def stale(prefix: Path, asked: Sequence[str]) -> bool:
    """True when the history's specs are not exactly ``asked``."""
    return requested(prefix) != {spec_name(s): s for s in asked if spec_name(s) is not None}


def append(
    prefix: Path,
    before: Iterable,
    after: Iterable,
    asked: Sequence[str],
    *,
    alias: str,
    argv: Sequence[str] | None = None,
) -> None:
    """Append one entry for a change from the ``before`` records to ``after``, ``asked`` being
    every spec the env file asks of this prefix (names it no longer asks for are removed specs).
    Nothing is written when neither the packages nor the specs changed."""
    old = {dist_str(r, alias) for r in before}
    new = {dist_str(r, alias) for r in after}
    had = requested(prefix)
    asked = list(dict.fromkeys(asked))
    names = {spec_name(s) for s in asked}
    removed = sorted(name for name in had if name not in names)
    if old == new and not removed and all(had.get(spec_name(s) or "") == s for s in asked):
        return
    command = " ".join(["pmpm", *(sys.argv[1:] if argv is None else argv)])
    lines = [
        f"==> {time.strftime('%Y-%m-%d %H:%M:%S')} <==",
        f"# cmd: {command}",
        f"# conda version: {CONDA_VERSION}",
        *(f"-{d}" for d in sorted(old - new)),
        *(f"+{d}" for d in sorted(new - old)),
    ]
    if removed:
        lines.append(f"# remove specs: {removed!r}")
    if asked:
        lines.append(f"# update specs: {asked!r}")
    target = path(prefix)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as file:
        file.write("\n".join(lines) + "\n")


def write_run(
    spec,
    layout,
    specs: Sequence[str],
    before: dict[Path, list],
    *,
    alias: str,
    after: dict[Path, list] | None = None,
) -> None:
    """One entry per stack of a pmpm run (``before``: each stack's records before it;
    ``after``: the records a stack is known to hold now, else they are read from it)."""
    known = after or {}
    for prefix, asked in asked_of(spec, layout, specs).items():
        now = known[prefix] if prefix in known else installed_records(prefix)
        append(prefix, before.get(prefix, []), now, asked, alias=alias)


def specs_changed(spec, layout, specs: Sequence[str]) -> bool:
    """Does the env file ask for other specs than the history says (a spec added for a package
    already installed as a dependency, a prefix pmpm made before it wrote history)?"""
    return any(stale(prefix, asked) for prefix, asked in asked_of(spec, layout, specs).items())


def asked_of(spec, layout, specs: Sequence[str]) -> dict[Path, list[str]]:
    """What the env file asks of each stack: its conda specs of the conda one, its ``_pmpm``
    packages of the compiled one (both of the one prefix conda_install makes)."""
    compiled = [p.name for p in spec.pmpm.packages]
    asked: dict[Path, list[str]] = {}
    if layout.conda is not None:
        asked[layout.conda] = list(specs)
    asked[layout.compile] = asked.get(layout.compile, []) + compiled
    return asked
