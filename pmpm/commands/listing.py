"""``pmpm list PREFIX``: the packages an environment holds, as ``conda list`` shows them.

Read from ``conda-meta`` as conda reads it, so the two agree; a package pmpm compiled is also
marked with what made it (target, source identity, build key) from the environment's record.
A prefix without a record (made by conda, or a record lost) is still listed, without the marks
the record alone knows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pmpm.commands import jsonout
from pmpm.commands.jsonout import Say
from pmpm.conda.engine import BUILD_PREFIX
from pmpm.env import inventory
from pmpm.env.layout import find
from pmpm.errors import PmpmError
from pmpm.record import api as records


def _compiled_marks(prefix: Path) -> dict[str, dict[str, Any]]:
    """name -> target, source identity, build key, recipe origin, build log, from the record (if any)."""
    try:
        record = records.read(prefix)
    except PmpmError:
        return {}
    return {
        p.name: {
            "target": p.target,
            "source": p.source.get("identity"),
            "build_key": p.build_key,
            "recipe": p.recipe.get("origin"),
            # the kept build log (pmpm.build.provenance), where the stack is
            "log": str(Path(record.layout.get(p.stack, record.layout["root"])) / p.log) if p.log else None,
        }
        for p in record.compiled_packages
    }


def packages(prefix: Path) -> tuple[list[Path], list[dict[str, Any]]]:
    """The environment's stacks and every package in them, by name."""
    prefix = Path(prefix).expanduser().absolute()
    layout = find(prefix)
    stacks = [s for s in layout.prefixes if (s / "conda-meta").is_dir()]
    if not stacks:
        raise PmpmError(
            f"{prefix} is not an environment (no conda-meta folder)",
            hint="give a prefix made by pmpm conda_install, system_install or conda",
        )
    marks = _compiled_marks(prefix)
    found = []
    for stack in stacks:
        for record in inventory.prefix_records(stack):
            name = record.name.normalized
            compiled = str(record.build).startswith(BUILD_PREFIX)
            mark = marks.get(name) if compiled else None
            if compiled and mark is None:  # no record: the build string still carries the key's start
                mark = {"target": None, "source": None, "build_key": str(record.build)[len(BUILD_PREFIX) :]}
                mark["recipe"] = mark["log"] = None
            found.append(
                {
                    "name": name,
                    "version": str(record.version),
                    "build": str(record.build),
                    "build_number": record.build_number,
                    "channel": str(record.channel or ""),
                    "subdir": record.subdir,
                    "stack": str(stack),
                    "compiled": mark,
                }
            )
    return stacks, sorted(found, key=lambda p: (p["name"], p["stack"]))


def run(prefix: Path, as_json: bool, say: Say) -> int:
    stacks, found = packages(prefix)
    if as_json:
        jsonout.emit(
            "list",
            {"prefix": str(Path(prefix).absolute()), "stacks": list(map(str, stacks)), "packages": found},
            say,
        )
        return 0
    for stack in stacks:
        say(f"# packages in environment at {stack}:")
        say("#")
        say(f"# {'Name':<24}{'Version':<18}{'Build':<26}Channel")
        for p in (p for p in found if p["stack"] == str(stack)):
            channel = "pmpm (compiled)" if p["compiled"] else p["channel"].rstrip("/").rsplit("/", 1)[-1]
            line = f"{p['name']:<26}{p['version']:<18}{p['build']:<26}{channel}"
            mark = p["compiled"]
            if mark:
                line += (
                    f"  target={mark['target'] or '?'} source={mark['source'] or '?'} key={mark['build_key']}"
                )
            say(line.rstrip())
    return 0
