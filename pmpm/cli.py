"""The ``pmpm`` command: parse arguments, call one module per command, print its outcome.

No logic lives here. User errors (:class:`PmpmError`) are printed as ``error: ...`` with their
hint and exit non-zero without a traceback.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from pmpm import __version__
from pmpm.errors import run_reporting

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Build HPC environments from one YAML file: conda packages, then host-tuned compiled packages.",
)


class Backend(str, Enum):
    rattler = "rattler"
    conda = "conda"
    mamba = "mamba"
    micromamba = "micromamba"


def _say(text: str) -> None:
    print(text, flush=True)


def _guard(call: Callable[[], int]) -> None:
    raise typer.Exit(run_reporting(call))


def _version(value: bool) -> None:
    if value:
        print(f"pmpm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Build HPC environments from one YAML file."""


@app.command("conda_install")
def conda_install(
    prefix: Annotated[Path, typer.Argument(help="The environment folder to create or update.")],
    file: Annotated[Path, typer.Option("--file", "-f", help="The environment file (environment.yml).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the transaction; change nothing.")] = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Use only local channels and cached repodata; no network.")
    ] = False,
    update: Annotated[
        bool,
        typer.Option("--update", help="Re-solve for the newest packages instead of keeping installed ones."),
    ] = False,
    backend: Annotated[
        Backend,
        typer.Option(
            "--backend", help="rattler (embedded, default), or an installed conda, mamba, micromamba."
        ),
    ] = Backend.rattler,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Parallel build jobs (default: all cores).")] = 0,
    keep_build: Annotated[
        bool, typer.Option("--keep-build", help="Keep each package's build folder (printed).")
    ] = False,
    channel_alias: Annotated[
        str | None,
        typer.Option(
            "--channel-alias",
            help="Base URL for channel names (default: $PMPM_CHANNEL_ALIAS or anaconda.org).",
        ),
    ] = None,
) -> None:
    """Create or update a conda environment in PREFIX from an env file, with no conda needed."""
    from pmpm import conda_install as command

    options = command.Options(
        prefix=prefix,
        file=file,
        dry_run=dry_run,
        offline=offline,
        update=update,
        backend=backend.value,
        channel_alias=channel_alias,
        jobs=jobs,
        keep_build=keep_build,
    )
    _guard(lambda: command.run(options, _say))


@app.command("plan")
def plan(
    prefix: Annotated[Path, typer.Argument(help="The environment folder.")],
    file: Annotated[Path, typer.Option("--file", "-f", help="The environment file.")],
    offline: Annotated[bool, typer.Option("--offline", help="No network.")] = False,
) -> None:
    """Show what conda_install would do to PREFIX, each step and why; change nothing."""
    from pmpm import conda_install as command

    _guard(
        lambda: command.run(command.Options(prefix=prefix, file=file, dry_run=True, offline=offline), _say)
    )


recipes_app = typer.Typer(no_args_is_help=True, help="Build recipes: list and show them.")
app.add_typer(recipes_app, name="recipes")
RecipeDirs = Annotated[
    list[Path] | None, typer.Option("--recipes", "-r", help="Extra recipe folders, searched first.")
]


@recipes_app.command("list")
def recipes_list(recipes: RecipeDirs = None) -> None:
    """List the recipes pmpm can build: name, version, build system, where it comes from."""
    from pmpm import show

    _guard(lambda: show.recipes_list(recipes or [], _say))


@recipes_app.command("show")
def recipes_show(name: str, recipes: RecipeDirs = None) -> None:
    """Print a recipe."""
    from pmpm import show

    _guard(lambda: show.recipes_show(name, recipes or [], _say))


@app.command("host")
def host(
    target: Annotated[
        str, typer.Option("--target", help="An archspec target instead of the host's.")
    ] = "host",
    targets: Annotated[bool, typer.Option("--targets", help="List all known target names.")] = False,
    prefix: Annotated[
        Path | None, typer.Option("--prefix", help="Also consider the conda MPI of this environment.")
    ] = None,
) -> None:
    """The CPU target, its features, the compilers and MPIs found, and what pmpm would use."""
    from pmpm import show

    _guard(lambda: show.host_report(target, None, _say, targets=targets, prefix=prefix))


def main() -> None:
    app(prog_name="pmpm")
