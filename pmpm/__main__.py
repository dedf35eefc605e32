"""The ``pmpm`` console script (and ``python -m pmpm``).

A plain command line is parsed from the declarations without loading typer, whose import (with
rich and pydantic) costs several times what ``pmpm activate`` or a no-op install does; anything
else (help, errors, unusual spellings) goes to the typer application built from the same
declarations.
"""

from __future__ import annotations

import os
import sys

from pmpm.commands import catalog, fast
from pmpm.errors import run_reporting


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = fast.find(catalog.COMMANDS, args)
    values = fast.parse(command, args[len(command.words) :]) if command else None
    if command is None or values is None or "_PMPM_COMPLETE" in os.environ:  # completion is typer's
        from pmpm import cli  # typer: only for what the fast parser leaves

        cli.main(args)
        return 0  # typer exits itself
    return run_reporting(lambda: command.run(**values))


if __name__ == "__main__":
    sys.exit(main())
