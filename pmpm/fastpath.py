"""Run ``pmpm conda_install`` without loading the CLI framework.

typer (with click, rich and pydantic) costs more to import than a no-op check and about half of
what a whole solve-and-install of 200 packages costs, and ``conda_install`` is the command users
run over and over. Its plain forms are parsed here with the same option names as the typer
command (a test keeps the two in step); anything else (help, a typo, a bad value) falls through to
the typer CLI, which owns all other parsing and its error messages.
"""

from __future__ import annotations

import sys
from pathlib import Path

_VALUED = {
    "--file": "file",
    "-f": "file",
    "--backend": "backend",
    "--channel-alias": "channel_alias",
    "--jobs": "jobs",
    "-j": "jobs",
    "--lock": "lock",  # typer's: rebuilding from a lock is not the repeated no-op command
    "--target": "target",
    "--rebuild": "rebuild",  # typer's: may be given more than once
}
_FLAGS = {
    "--offline": "offline",
    "--dry-run": "dry_run",
    "--update": "update",
    "--keep-build": "keep_build",
    "--fresh": "fresh",
}
_BACKENDS = ("rattler", "conda", "mamba", "micromamba")


def parse(argv: list[str]):
    """The ``conda_install`` options for a plain command line, or None to let typer handle it."""
    if len(argv) < 2 or argv[0] != "conda_install":
        return None
    values: dict = {}
    positional: list[str] = []
    tokens = iter(argv[1:])
    for token in tokens:
        name, eq, inline = token.partition("=")
        if name in _VALUED:
            value = inline if eq else next(tokens, None)
            if value is None or value.startswith("-"):
                return None
            values[_VALUED[name]] = value
        elif token in _FLAGS:
            values[_FLAGS[token]] = True
        elif token.startswith("-"):
            return None
        else:
            positional.append(token)
    if {"lock", "target", "rebuild"} & values.keys():
        return None
    if len(positional) != 1 or "file" not in values or values.get("backend", "rattler") not in _BACKENDS:
        return None
    if "jobs" in values:
        if not values["jobs"].isdigit():
            return None
        values["jobs"] = int(values["jobs"])

    from pmpm.conda_install import Options

    return Options(prefix=Path(positional[0]), file=Path(values.pop("file")), **values)


def main() -> None:
    """The console script."""
    opts = parse(sys.argv[1:])
    if opts is None:
        from pmpm.cli import main as cli_main

        cli_main()
        return
    from pmpm import conda_install
    from pmpm.errors import run_reporting

    sys.exit(run_reporting(lambda: conda_install.run(opts)))
