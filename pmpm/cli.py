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


#: options shared by the two install commands
Offline = Annotated[
    bool, typer.Option("--offline", help="Use only local channels and cached repodata; no network.")
]
Update = Annotated[
    bool, typer.Option("--update", help="Re-solve for the newest packages instead of keeping installed ones.")
]
Jobs = Annotated[int, typer.Option("--jobs", "-j", help="Parallel build jobs (default: all cores).")]
KeepBuild = Annotated[bool, typer.Option("--keep-build", help="Keep each package's build folder (printed).")]
Fresh = Annotated[
    bool, typer.Option("--fresh", help="Rebuild every compiled package from a clean build folder.")
]
Rebuild = Annotated[
    list[str] | None,
    typer.Option("--rebuild", help="Build this compiled package again even if up to date (repeatable)."),
]
ChannelAlias = Annotated[
    str | None,
    typer.Option(
        "--channel-alias", help="Base URL for channel names (default: $PMPM_CHANNEL_ALIAS or anaconda.org)."
    ),
]


@app.command("conda_install")
def conda_install(
    prefix: Annotated[Path, typer.Argument(help="The environment folder to create or update.")],
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="The environment file (environment.yml).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the transaction; change nothing.")] = False,
    offline: Offline = False,
    update: Update = False,
    backend: Annotated[
        Backend | None,
        typer.Option(
            "--backend",
            help="rattler (embedded, default), or an installed conda, mamba, micromamba "
            "(overrides the env file's `_pmpm.backend`).",
        ),
    ] = None,
    jobs: Jobs = 0,
    keep_build: KeepBuild = False,
    fresh: Fresh = False,
    rebuild: Rebuild = None,
    channel_alias: ChannelAlias = None,
    lock: Annotated[
        Path | None,
        typer.Option("--lock", help="Rebuild what a `pmpm export` lock file describes (no solve)."),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option("--target", help="With --lock: build compiled packages for this archspec target."),
    ] = None,
) -> None:
    """Create or update a conda environment in PREFIX from an env file, with no conda needed."""
    if lock is not None or file is None:
        from pmpm import lock as locked

        _guard(
            lambda: locked.install_command(
                prefix,
                lock,
                file,
                _say,
                target=target,
                jobs=jobs,
                offline=offline,
                keep_build=keep_build,
                dry_run=dry_run,
            )
        )
        return
    from pmpm import conda_install as command

    options = command.Options(
        prefix=prefix,
        file=file,
        dry_run=dry_run,
        offline=offline,
        update=update,
        backend=backend.value if backend else None,
        channel_alias=channel_alias,
        jobs=jobs,
        keep_build=keep_build,
        fresh=fresh,
        rebuild=tuple(rebuild or ()),
    )
    _guard(lambda: command.run(options, _say))


@app.command("system_install")
def system_install(
    prefix: Annotated[
        Path, typer.Argument(help="The folder for both stacks: PREFIX/conda and PREFIX/compile.")
    ],
    file: Annotated[Path, typer.Option("--file", "-f", help="The environment file (environment.yml).")],
    conda_prefix: Annotated[
        Path | None,
        typer.Option("--conda-prefix", help="Put (or keep) the conda stack here instead of PREFIX/conda."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would change; change nothing.")
    ] = False,
    offline: Offline = False,
    update: Update = False,
    jobs: Jobs = 0,
    keep_build: KeepBuild = False,
    fresh: Fresh = False,
    rebuild: Rebuild = None,
    channel_alias: ChannelAlias = None,
) -> None:
    """Compile the `_pmpm` packages with the host's compilers and MPI into PREFIX/compile, beside a
    conda stack in PREFIX/conda (or --conda-prefix, or none with `_pmpm: {conda: false}`)."""
    from pmpm import system_install as command

    options = command.Options(
        prefix=prefix,
        file=file,
        conda_prefix=conda_prefix,
        dry_run=dry_run,
        offline=offline,
        update=update,
        channel_alias=channel_alias,
        jobs=jobs,
        keep_build=keep_build,
        fresh=fresh,
        rebuild=tuple(rebuild or ()),
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


cache_app = typer.Typer(
    no_args_is_help=True, help="The binary cache of compiled packages: list, push, prune."
)
app.add_typer(cache_app, name="cache")


@cache_app.command("list")
def cache_list(
    folder: Annotated[
        Path | None, typer.Option("--cache", help="A shared cache folder instead of the local build channel.")
    ] = None,
) -> None:
    """List the compiled packages in the cache: name, version, build key, size, last use."""
    from pmpm import binary_cache

    _guard(lambda: binary_cache.list_command(folder, _say))


@cache_app.command("push")
def cache_push(
    dest: Annotated[Path, typer.Argument(help="A folder channel others read (shared disk, web root).")],
    names: Annotated[list[str] | None, typer.Argument(help="Only these packages (default: all).")] = None,
) -> None:
    """Copy compiled packages from the local build channel into a shared cache folder, indexed."""
    from pmpm import binary_cache

    _guard(lambda: binary_cache.push_command(dest, names or [], _say))


@cache_app.command("prune")
def cache_prune(
    older_than: Annotated[
        float | None, typer.Option("--older-than", help="Remove packages not used for this many days.")
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Remove every package.")] = False,
) -> None:
    """Remove compiled packages from the local build channel (installing or building one counts as use)."""
    from pmpm import binary_cache

    _guard(lambda: binary_cache.prune_command(older_than, everything, _say))


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


class ShellName(str, Enum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


ShellOption = Annotated[ShellName, typer.Option("--shell", help="The shell that evaluates the script.")]


@app.command("module")
def module(
    prefix: Annotated[Path, typer.Argument(help="The environment folder.")],
    lmod: Annotated[
        Path | None, typer.Option("--lmod", help="Write a Lua modulefile under this MODULEPATH folder.")
    ] = None,
    tcl: Annotated[
        Path | None, typer.Option("--tcl", help="Write a Tcl modulefile under this MODULEPATH folder.")
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="NAME or NAME/VERSION (default: the env's name / short environment id)."),
    ] = None,
) -> None:
    """Write Lmod and/or Tcl modulefiles that make PREFIX available with `module load`."""
    from pmpm import modules

    _guard(lambda: modules.module_command(prefix, lmod, tcl, name, _say))


@app.command("activate")
def activate(
    prefix: Annotated[Path, typer.Argument(help="The environment folder.")],
    shell: ShellOption = ShellName.bash,
) -> None:
    """Print a script that activates PREFIX without conda: eval "$(pmpm activate PREFIX)"."""
    from pmpm import activation

    _guard(lambda: activation.activate_command(prefix, shell.value))


@app.command("deactivate")
def deactivate(shell: ShellOption = ShellName.bash) -> None:
    """Print a script that undoes `pmpm activate`: eval "$(pmpm deactivate)"."""
    from pmpm import activation

    _guard(lambda: activation.deactivate_command(shell.value))


@app.command("record")
def record(
    prefix: Annotated[Path, typer.Argument(help="The environment folder (or a record.json file).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole record as JSON.")] = False,
) -> None:
    """Show what PREFIX holds and how it was made, with its environment id."""
    from pmpm import record as records

    _guard(lambda: records.show(prefix, as_json, _say))


@app.command("verify")
def verify(
    prefix: Annotated[Path, typer.Argument(help="The environment folder.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check PREFIX against its record: missing, modified and extra files, packages changed behind
    pmpm's back. Exits non-zero when anything differs."""
    from pmpm import verify as command

    _guard(lambda: command.run(prefix, _say, as_json=as_json))


@app.command("repair")
def repair(prefix: Annotated[Path, typer.Argument(help="The environment folder.")]) -> None:
    """Reinstall the packages (conda or compiled) whose files `pmpm verify` finds missing or
    modified, from the package cache or their channel; then verify again."""
    from pmpm import repair as command

    _guard(lambda: command.run(prefix, _say))


@app.command("diff")
def diff(
    a: Annotated[Path, typer.Argument(help="An environment folder or a record.json file.")],
    b: Annotated[Path, typer.Argument(help="Another one.")],
) -> None:
    """Compare two environments: packages, versions, flags, targets. Exits 1 when they differ."""
    from pmpm import verify as command

    _guard(lambda: command.diff(a, b, _say))


@app.command("export")
def export(
    prefix: Annotated[Path, typer.Argument(help="The environment folder.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The lock file to write.")],
) -> None:
    """Write a portable lock (rattler/pixi format plus pmpm's recipes and sources) to rebuild
    PREFIX elsewhere with `pmpm conda_install NEWPREFIX --lock FILE`."""
    from pmpm import lock

    _guard(lambda: lock.export(prefix, output, _say))


@app.command("run")
def run(
    prefix: Annotated[Path, typer.Argument(help="The environment folder.")],
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after `--`.")],
    expect: Annotated[
        str | None, typer.Option("--expect", help="Refuse to run unless the environment id is this.")
    ] = None,
    provenance: Annotated[
        Path | None, typer.Option("--provenance", help="Write the run's provenance (JSON) here.")
    ] = None,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Do not check the prefix against its record first.")
    ] = False,
) -> None:
    """Run CMD in PREFIX, activated, after checking it; its exit code is pmpm's."""
    from pmpm import pin

    _guard(
        lambda: pin.run(prefix, command, _say, expect=expect, provenance_file=provenance, check=not no_verify)
    )


def main() -> None:
    app(prog_name="pmpm")
