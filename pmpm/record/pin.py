"""Pin an experiment to its environment: its id, a check that fails loudly, and provenance.

``pmpm.environment_id()``, ``pmpm.require(id)`` and ``pmpm.provenance()`` (re-exported lazily by
``pmpm/__init__.py``) start from the running interpreter's prefix (``sys.prefix``, resolved
through :func:`pmpm.env.layout.find`, so the conda stack of a system_install leads to the whole
environment). ``pmpm run PREFIX -- CMD`` does the same from outside: activate, check, run, and
write the provenance next to the results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pmpm.errors import PmpmError
from pmpm.fsutil import atomic_write_text
from pmpm.host import target_choice
from pmpm.publish.activation import run_activation
from pmpm.record import api as records

Say = Callable[[str], None]


class EnvironmentMismatch(PmpmError):
    """The environment is not the one an experiment requires (a :class:`PmpmError`)."""


def _prefix(prefix: Path | str | None) -> Path:
    return Path(prefix) if prefix is not None else Path(sys.prefix)


def environment_id(prefix: Path | str | None = None) -> str | None:
    """The id of the environment PREFIX (default: the running interpreter's) belongs to, or None
    when pmpm has no record of it."""
    return records.environment_id(_prefix(prefix))


def require(expected: str, prefix: Path | str | None = None) -> str:
    """Raise :class:`EnvironmentMismatch` unless the environment's id is ``expected``.

    ``expected`` is an id or the path of a record file (``record.json``) to compare with. When
    the ids differ, the message lists what differs, taken from the earlier record of this
    environment that had the expected id (pmpm keeps the last few), or from the record file.
    Returns the id.
    """
    here = _prefix(prefix)
    layout = records.layout_of(here)
    try:
        current = records.read(layout.root)
    except PmpmError as exc:
        raise EnvironmentMismatch(
            f"this Python ({sys.executable}) does not run in an environment pmpm recorded: {exc.message}",
            hint=f"run the experiment with the environment whose id is {expected}, "
            "e.g. `pmpm run PREFIX --expect ID -- python ...`",
        ) from None
    wanted_record = None
    wanted_id = expected
    if os.sep in expected or expected.endswith(".json"):
        wanted_record = records.read(Path(expected))
        wanted_id = wanted_record.environment_id
    if current.environment_id == wanted_id:
        return current.environment_id
    if wanted_record is None and wanted_id in records.history(layout):
        wanted_record = records.read(records.history(layout)[wanted_id])
    if wanted_record is not None:
        from pmpm.record.verify import differences  # lazy: see provenance()

        lines = differences(wanted_record, current) or ["(no package differs)"]
        detail = "\nwhat differs from the required environment:\n" + "\n".join(f"  {x}" for x in lines)
    else:
        detail = (
            f"\nthe required id is not an earlier state of {layout.root} that pmpm knows; "
            "compare records with `pmpm diff`"
        )
    raise EnvironmentMismatch(
        f"environment {layout.root} has id {current.environment_id}, the experiment requires "
        f"{wanted_id}{detail}",
        hint="run in the environment the experiment was pinned to (rebuild it from its lock with "
        "`pmpm conda_install NEWPREFIX --lock env.lock`), or update the pinned id",
    )


def _git(cwd: Path) -> dict[str, Any] | None:
    def call(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    top = call("rev-parse", "--show-toplevel")
    if top is None:
        return None
    status = call("status", "--porcelain", "--untracked-files=no")
    return {
        "root": top,
        "commit": call("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
    }


def provenance(
    prefix: Path | str | None = None,
    *,
    verify: bool = True,
    command: Sequence[str] | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Where a result comes from: environment id and whether the environment still matches its
    record, host target, the experiment repository's commit and dirty state (``cwd``), the
    command line. A dict ready for ``json.dump``; the keys are documented in docs/record.md."""
    here = _prefix(prefix)
    layout = records.layout_of(here)
    cwd = Path(cwd or os.getcwd())
    env_id = records.environment_id(layout.root)
    status: dict[str, Any]
    if env_id is None:
        status = {"ok": False, "problems": [{"kind": "no record", "what": str(layout.root)}]}
    elif verify:
        # lazy: verify's thread pool costs ~30 ms to import, which `pmpm.environment_id()` and
        # `pmpm.require()` in an experiment's Python (and `pmpm run --no-verify`) need not pay
        from pmpm.record.verify import check

        status = check(layout.root).to_dict()
        status.pop("environment_id", None)
    else:
        status = {"ok": None, "problems": []}
    host = records.describe_host()
    return {
        "format": 1,
        "environment_id": env_id,
        "environment": str(layout.root),
        "verify": status,
        "host": {"target": host.target, "os": host.os, "machine": host.machine, "glibc": host.glibc},
        "git": _git(cwd),
        "cwd": str(cwd),
        "command": list(command) if command is not None else [sys.executable, *sys.argv],
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def run(
    prefix: Path,
    command: Sequence[str],
    say: Say,
    *,
    expect: str | None = None,
    provenance_file: Path | None = None,
    check: bool = True,
) -> int:
    """``pmpm run PREFIX [--expect ID] [--provenance FILE] -- CMD ...``; returns CMD's exit code.

    CMD is run as an argument list (no shell) in PREFIX activated by py-rattler. It is not run
    when the environment differs from its record or from ``expect``: a result computed in a
    drifted environment cannot be traced back.
    """
    if not command:
        raise PmpmError("no command to run", hint="put it after `--`: pmpm run PREFIX -- python script.py")
    layout = records.layout_of(prefix)
    used, choice = target_choice.select(layout)  # before any work: no fitting target stops here
    if expect is not None:
        require(expect, layout.root)
    info = provenance(layout.root, verify=check, command=command)
    if choice is not None:
        print(f"note: {choice.describe()}", file=sys.stderr, flush=True)  # stdout is CMD's
        info["target"] = choice.target
    if check and not info["verify"]["ok"]:
        for problem in info["verify"]["problems"][:50]:
            say(
                f"  {problem['kind']}: {problem['what']}"
                + (f" ({problem['owner']})" if problem.get("owner") else "")
            )
        raise PmpmError(
            f"{layout.root} does not match its record; not running {command[0]}",
            hint=f"see `pmpm verify {layout.root}`; `pmpm repair {layout.root}` puts back missing or "
            "modified files of its packages; or pass --no-verify to run anyway (the provenance then "
            "says it was not checked)",
        )
    env = run_activation(used, os.environ)
    env["PMPM_ENVIRONMENT_ID"] = info["environment_id"] or ""
    started = datetime.now(timezone.utc)
    try:
        proc = subprocess.run(list(command), env=env, check=False)
    except OSError as exc:
        raise PmpmError(
            f"cannot run {command[0]}: {exc.strerror}", hint="check the command after `--`"
        ) from None
    info["exit_code"] = proc.returncode
    info["started"] = started.isoformat(timespec="seconds")
    info["seconds"] = round((datetime.now(timezone.utc) - started).total_seconds(), 3)
    if provenance_file is not None:
        atomic_write_text(Path(provenance_file), json.dumps(info, indent=1, sort_keys=True) + "\n")
    return proc.returncode
