"""Where an environment's record lives, and reading it back.

The record is ``layout.meta_dir / "record.json"`` (``PREFIX/conda-meta/pmpm/record.json`` for a
plain prefix, ``ROOT/.pmpm/record.json`` for a system_install); earlier ones are kept by id in
``records/`` beside it. Cheap to import: ``pmpm.environment_id()`` calls it from experiments.
"""

from __future__ import annotations

import json
from pathlib import Path

from pmpm.env.layout import Layout, find
from pmpm.errors import PmpmError
from pmpm.record.model import Record

RECORD_NAME = "record.json"
#: older records of the same environment, by id: ``require()`` explains a mismatch against them
HISTORY_DIR = "records"
HISTORY_KEEP = 20
#: the role of a target's compiled stack in the record: ``compile:x86_64_v3``
TARGET_STACK = "compile:"


def layout_of(prefix: Path) -> Layout:
    """The layout a prefix (or system_install root, or its conda stack) belongs to."""
    return find(Path(prefix))


def record_path(layout: Layout) -> Path:
    return layout.meta_dir / RECORD_NAME


def stacks(layout: Layout) -> dict[str, Path]:
    """The prefixes of one environment by role: one ``prefix``, or ``compile`` and ``conda``;
    with several targets a ``compile:TARGET`` per target beside the conda stack (``prefix`` of
    a conda_install, ``conda`` of a system_install)."""
    if layout.targets:
        found = {f"{TARGET_STACK}{t}": Path(layout.stack(t)) for t in layout.targets}
        if layout.conda is not None:
            found["conda" if layout.kind == "system" else "prefix"] = Path(layout.conda)
        return found
    if layout.kind != "system":
        return {"prefix": Path(layout.root)}
    found = {"compile": Path(layout.compile)}
    if layout.conda is not None and Path(layout.conda) != Path(layout.compile):
        found["conda"] = Path(layout.conda)
    return found


def environment_id(prefix: Path) -> str | None:
    """The environment id of PREFIX's record, or None when there is none (cheap: one small read)."""
    try:
        path = record_path(layout_of(prefix))
        with path.open("rb") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    value = data.get("environment_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def read(location: Path) -> Record:
    """The record of a prefix (or system_install root), or a record file given directly."""
    location = Path(location).expanduser()
    if location.is_file():
        path = location
    elif location.is_dir():
        path = record_path(layout_of(location))
    else:
        raise PmpmError(f"{location} does not exist", hint="give an environment prefix or a record.json file")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PmpmError(
            f"{location} has no pmpm record ({path} is missing)",
            hint="records are written by pmpm conda_install at the end of a successful run; "
            "run it on this prefix (a prefix made by another tool has no record)",
        ) from None
    except OSError as exc:
        raise PmpmError(f"cannot read the record: {exc.strerror}", where=str(path)) from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise PmpmError(
            f"the record is not valid JSON ({exc})",
            where=str(path),
            hint="run pmpm conda_install again to rewrite it",
        ) from None
    return Record.from_dict(data, where=str(path))


def history(layout: Layout) -> dict[str, Path]:
    """Earlier records of this environment by id (newest kept), for explaining a mismatch."""
    folder = layout.meta_dir / HISTORY_DIR
    try:
        return {p.stem: p for p in folder.glob("*.json")}
    except OSError:
        return {}
