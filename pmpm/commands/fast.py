"""Parse a plain ``pmpm`` command line from the declarations, without importing typer.

A plain line names a command, gives each declared option at most once (``--opt VALUE``,
``--opt=VALUE`` or a flag; repeatable ones as often as wanted), its positional arguments, and
maybe ``--`` before the rest. Anything else (``--help``, a typo, a bad value, a missing
argument, a short flag bundle) returns None and goes to typer, which owns help and error
messages. Both parsers read the same :class:`~pmpm.commands.declare.Param` and convert values
with the same :func:`~pmpm.commands.declare.convert`, so they accept the same options.
"""

from __future__ import annotations

from collections.abc import Sequence

from pmpm.commands.declare import Command, convert


def find(commands: Sequence[Command], argv: Sequence[str]) -> Command | None:
    """The command whose words start ``argv``."""
    for command in commands:
        if tuple(argv[: len(command.words)]) == command.words:
            return command
    return None


def parse(command: Command, tokens: Sequence[str]) -> dict[str, object] | None:
    """The handler's keywords for ``tokens`` (what follows the command's words), or None."""
    by_flag = {flag: p for p in command.params for flag in p.flags}
    values: dict[str, object] = {}
    positional: list[str] = []
    rest = iter(tokens)
    try:
        for token in rest:
            if token == "--":
                positional.extend(rest)
                break
            if not token.startswith("-") or token == "-":
                positional.append(token)
                continue
            flag, eq, inline = token.partition("=")
            param = by_flag.get(flag)
            if param is None or (param.name in values and not param.repeat):
                return None
            if param.kind is bool:
                if eq:
                    return None
                values[param.name] = True
                continue
            text = inline if eq else next(rest, None)
            if text is None or (not eq and text.startswith("-")):
                return None
            value = convert(param, text)
            values[param.name] = (*values.get(param.name, ()), value) if param.repeat else value  # type: ignore[misc]
        arguments = [p for p in command.params if not p.is_option]
        for param in arguments:
            if param.repeat:
                values[param.name] = tuple(convert(param, text) for text in positional)
                positional = []
            elif positional:
                values[param.name] = convert(param, positional.pop(0))
    except ValueError:
        return None
    if positional:
        return None
    for param in command.params:
        if param.name not in values:
            if param.required:
                return None
            values[param.name] = param.default
        elif param.required and param.repeat and not values[param.name]:
            return None
    return values
