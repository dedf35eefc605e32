"""The typer application, built from the declarations in :mod:`pmpm.commands.catalog`.

It renders ``--help`` and the error messages, and parses the command lines the fast parser
(:mod:`pmpm.commands.fast`) leaves to it. It holds no option of its own: each declared
:class:`~pmpm.commands.declare.Param` becomes one typer parameter here, with the metavar the
declaration names (so help shows ``--jobs N``, and flags show no value at all).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from pmpm import __version__
from pmpm.commands import catalog, completion
from pmpm.commands.declare import Command, Param
from pmpm.errors import run_reporting

#: what a generated command calls with the handler's keywords (tests record them instead)
Dispatch = Callable[[Command, dict[str, object]], None]


def _no_help_type(option: typer.core.TyperOption | None) -> typer.core.TyperOption | None:
    if option is not None:
        option.metavar = ""  # typer would print `<bool>` after --help
    return option


class _Argument(typer.core.TyperArgument):
    """An argument shown by its metavar alone: typer would add its Python type (``<path>``)."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def get_usage_pieces(self, ctx: Any) -> list[str]:
        name = self.metavar or self.name or ""
        return [(name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")]


class _Command(typer.core.TyperCommand):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:  # typer offers no hook for the class of the arguments it makes
            if type(param) is typer.core.TyperArgument:
                param.__class__ = _Argument

    def get_help_option(self, ctx: Any) -> typer.core.TyperOption | None:
        return _no_help_type(super().get_help_option(ctx))


class _Group(typer.core.TyperGroup):
    def get_help_option(self, ctx: Any) -> typer.core.TyperOption | None:
        return _no_help_type(super().get_help_option(ctx))

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, typer.core.TyperOption) and param.name in (
                "install_completion",
                "show_completion",
            ):  # typer's own flags
                _no_help_type(param)
        return params


def run(command: Command, values: dict[str, object]) -> None:
    """Call the handler; a user error becomes ``error: ...`` and the exit code."""
    raise typer.Exit(run_reporting(lambda: command.run(**values)))


def _recipe_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """Recipe names for shell completion: the command's --recipes folders, plugins, built-ins."""
    from pmpm.build.recipe import RecipeBook  # only when completing: not for --help

    folders = [Path(f) for f in ctx.params.get("recipes") or ()]
    return [n for n in sorted(RecipeBook(folders).sources()) if n.startswith(incomplete)]


def _target_names(incomplete: str) -> list[str]:
    """archspec's target names (and ``host``) for shell completion."""
    from pmpm.host.detect import known_targets  # archspec: only when completing a target

    return [n for n in ["host", *known_targets()] if n.startswith(incomplete)]


#: what a declaration's ``complete`` names, as typer's completion callbacks
COMPLETERS: dict[str, Callable[..., list[str]]] = {"recipe": _recipe_names, "target": _target_names}


def _parameter(param: Param) -> inspect.Parameter:
    """``param`` as the annotated keyword parameter typer reads from a signature."""
    kind: Any = param.kind
    default: object = inspect.Parameter.empty if param.required else param.default
    if param.choices:
        choice = Enum(f"{param.name}_choice", {c: c for c in param.choices}, type=str)  # type: ignore[misc]
        default = choice(default) if isinstance(default, str) else default
        kind = choice
    if param.repeat:
        kind = list[kind]
        default = inspect.Parameter.empty if param.required else None
    if default is None:
        kind = kind | None
    info: Any
    more: dict[str, Any] = {"autocompletion": COMPLETERS[param.complete]} if param.complete else {}
    if param.is_option:
        # a default shows only when it is a word (bash, host); 0 or none means what the help says
        shown = isinstance(param.default, str)
        info = typer.Option(*param.flags, help=param.help, metavar=param.metavar, show_default=shown, **more)
    else:
        info = typer.Argument(help=param.help, metavar=param.metavar, **more)
    return inspect.Parameter(
        param.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, info]
    )


def _plain(value: object) -> object:
    """typer's value as the fast parser gives it: strings for choices, tuples for repeats."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def _function(command: Command, dispatch: Dispatch) -> Callable[..., None]:
    def call(**given: object) -> None:
        values = {}
        for param in command.params:
            value = _plain(given[param.name])
            values[param.name] = param.default if value is None and param.repeat else value
        dispatch(command, values)

    call.__signature__ = inspect.Signature([_parameter(p) for p in command.params])  # type: ignore[attr-defined]
    call.__name__ = call.__qualname__ = "_".join(command.words)
    call.__doc__ = command.help
    return call


def _version(value: bool) -> None:
    if value:
        print(f"pmpm {__version__}")
        raise typer.Exit()


def build(dispatch: Dispatch = run) -> typer.Typer:
    """The application for all declared commands; each calls ``dispatch`` with its keywords."""
    completion.fix_zsh_script()  # typer's completes only from the second TAB when autoloaded
    app = typer.Typer(
        cls=_Group,
        add_completion=True,  # --install-completion / --show-completion, and _PMPM_COMPLETE
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        help=catalog.ROOT_HELP,
    )

    @app.callback()
    def _root(
        version: Annotated[
            bool,
            typer.Option(
                "--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit."
            ),
        ] = False,
    ) -> None:
        """Build HPC environments from one YAML file."""

    groups: dict[str, typer.Typer] = {}
    for name, text in catalog.GROUPS.items():
        groups[name] = typer.Typer(cls=_Group, no_args_is_help=True, help=text)
        app.add_typer(groups[name], name=name)
    for command in catalog.COMMANDS:
        *group, name = command.words
        parent = groups[group[0]] if group else app
        parent.command(name, cls=_Command, help=command.help, short_help=command.summary)(
            _function(command, dispatch)
        )
    return app


def main(argv: list[str] | None = None) -> None:
    """The typer path of the console script (see :mod:`pmpm.__main__`)."""
    build()(args=argv, prog_name="pmpm")
