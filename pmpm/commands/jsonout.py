"""The one shape of every ``--json`` output: ``{"format": 1, "command": ..., ...}``.

Scripts and CI jobs read these, so each command's keys are documented in ``docs/json.md`` and
``FORMAT`` changes only when a key changes meaning or goes away (new keys may appear without
it). ``pmpm record --json`` is the exception: it prints the record itself, which has a
``format`` of its own (``docs/record.md``).

Standard library only: ``pmpm list --json`` and friends should not pay for more.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

FORMAT = 1

Say = Callable[[str], None]


def emit(command: str, data: dict[str, Any], say: Say) -> None:
    """Print ``data`` as the JSON document of ``command``."""
    say(json.dumps({"format": FORMAT, "command": command, **data}, indent=1, default=str))


def to_stderr(text: str) -> None:
    """Where progress goes while stdout carries a JSON document."""
    print(text, file=sys.stderr, flush=True)
