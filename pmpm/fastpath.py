"""Answer ``pmpm conda_install`` on an up-to-date prefix before the CLI framework loads.

typer (with click, rich and pydantic) costs more to import than the whole no-op check, and a
no-op re-run is the most common command on a cluster login node. This recognises only the
plainest form of the command; anything else (help, --dry-run, --update, an unknown option, a
malformed line) falls through to the real CLI, which owns all parsing and error messages.
"""

from __future__ import annotations

from pathlib import Path

_VALUED = {"--file": "file", "-f": "file", "--backend": "backend", "--channel-alias": "channel_alias"}
_FLAGS = {"--offline": "offline"}


def try_noop(argv: list[str]) -> bool:
    """True when the command was a no-op and its answer has been printed."""
    if len(argv) < 2 or argv[0] != "conda_install":
        return False
    values: dict = {}
    positional: list[str] = []
    tokens = iter(argv[1:])
    for token in tokens:
        name, eq, inline = token.partition("=")
        if name in _VALUED:
            value = inline if eq else next(tokens, None)
            if value is None:
                return False
            values[_VALUED[name]] = value
        elif token in _FLAGS:
            values[_FLAGS[token]] = True
        elif token.startswith("-"):
            return False
        else:
            positional.append(token)
    if len(positional) != 1 or "file" not in values:
        return False

    from pmpm import state
    from pmpm.conda_install import Options

    opts = Options(prefix=Path(positional[0]), file=Path(values.pop("file")), **values)
    try:
        env_bytes = opts.file.read_bytes()
    except OSError:
        return False
    prefix = opts.prefix.expanduser().absolute()
    if not state.up_to_date(prefix, state.expected(env_bytes, opts.fingerprint())):
        return False
    print(f"{prefix} is up to date with {opts.file}", flush=True)
    return True


def main() -> None:
    """The console script: the no-op check first, the typer CLI only when there is work to do."""
    import sys

    if not try_noop(sys.argv[1:]):
        from pmpm.cli import main as cli_main

        cli_main()
