"""How a command is declared: its words, help, parameters and handler, once, as plain data.

Both parsers are derived from these declarations: :mod:`pmpm.commands.fast` parses the plain
forms of every command without importing typer (the framework, with rich and pydantic, costs
several times what ``pmpm activate`` or a no-op install does), and :mod:`pmpm.cli` builds the
typer application, which renders help and errors and parses whatever the fast parser leaves to
it. Neither holds an option of its own, so they cannot drift apart.

This module imports nothing beyond the standard library: it is loaded by every ``pmpm`` run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: the types a parameter may have; each has one conversion, shared by both parsers
KINDS: tuple[type, ...] = (bool, int, float, str, Path)


@dataclass(frozen=True)
class Param:
    """One option (``flags`` given) or positional argument (no ``flags``) of a command."""

    name: str  # the handler's keyword
    kind: type  # bool (a flag), int, float, str or Path
    help: str
    flags: tuple[str, ...] = ()
    default: object = None
    required: bool = False
    repeat: bool = False  # an option given several times, or an argument taking the rest: a tuple
    choices: tuple[str, ...] = ()
    metavar: str = ""  # how --help names the value (FILE, N, ...); flags have none
    complete: str = ""  # what shell completion offers: "recipe" or "target" names (see pmpm.cli)

    @property
    def is_option(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True)
class Command:
    """A command: ``words`` after ``pmpm`` (``("cache", "list")``), its help and its handler.

    ``summary`` is the line in the list of commands; ``help`` the paragraph of ``pmpm WORDS
    --help`` (one line each, wrapped by the terminal: never hard line breaks). ``run`` takes the
    parameters as keywords and returns the exit code; it imports the module that does the work,
    so a command loads only what it needs.
    """

    words: tuple[str, ...]
    summary: str
    help: str
    params: tuple[Param, ...]
    run: Callable[..., int]


def arg(name: str, kind: type, help: str, **more: object) -> Param:
    """A positional argument, required unless it has a default or takes the rest (``repeat``)."""
    more.setdefault("required", "default" not in more and not more.get("repeat"))
    more.setdefault("metavar", name.upper())
    if more.get("repeat"):
        more.setdefault("default", ())
    return Param(name, kind, help, **more)  # type: ignore[arg-type]


def opt(name: str, *flags: str, kind: type = bool, help: str, **more: object) -> Param:
    """An option; ``kind=bool`` is a flag (default False), any other kind takes a value."""
    if kind is bool or more.get("repeat"):
        more.setdefault("default", False if kind is bool else ())
    return Param(name, kind, help, flags=flags, **more)  # type: ignore[arg-type]


def convert(param: Param, text: str) -> object:
    """``text`` as ``param``'s value, or raise ValueError (the caller lets typer explain)."""
    if param.choices and text not in param.choices:
        raise ValueError(text)
    if param.kind is int:
        if not text.isdigit():
            raise ValueError(text)
        return int(text)
    if param.kind is float:
        return float(text)
    if param.kind is Path:
        return Path(text)
    return text
