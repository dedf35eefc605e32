"""The ``pmpm`` command: parse arguments, call one module per command, print its outcome.

No logic lives here. User errors (:class:`PmpmError`) are printed as ``error: ...`` with their
hint and exit non-zero without a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from pmpm import __version__
from pmpm.errors import PmpmError

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
    try:
        code = call()
    except PmpmError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("error: interrupted; the prefix was put back as it was", file=sys.stderr)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


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
    )
    _guard(lambda: command.run(options, _say))


def main() -> None:
    app(prog_name="pmpm")
