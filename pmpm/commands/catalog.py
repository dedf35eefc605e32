"""Every ``pmpm`` command, declared once: words, help, parameters, and the call it makes.

Both parsers are derived from this table (see :mod:`pmpm.commands.declare`); the calls are in
:mod:`pmpm.commands.handlers`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pmpm.commands import handlers as h
from pmpm.commands.declare import Command, Param, arg, opt
from pmpm.commands.params import (
    AS_JSON,
    CHANNEL_ALIAS,
    FILE,
    FRESH,
    JOBS,
    KEEP_BUILD,
    OFFLINE,
    PREFIX,
    REBUILD,
    RECIPE_DIRS,
    SHELL,
    SLURM,
    TARGETS,
    UPDATE,
    YES,
)

ROOT_HELP = "Build HPC environments from one YAML file: conda packages, then host-tuned compiled packages."
#: the command groups and their help
GROUPS = {
    "cache": "The binary cache of compiled packages: list, push, prune, check.",
    "recipes": "Build recipes: list and show them.",
}
BACKENDS = ("rattler", "conda", "mamba", "micromamba")


def _c(words: str, summary: str, help: str, run: Callable[..., int], *params: Param) -> Command:
    return Command(tuple(words.split()), summary, help or summary, params, run)


COMMANDS: tuple[Command, ...] = (
    _c(
        "conda_install",
        "Create or update a conda environment in PREFIX from an env file, with no conda needed.",
        "",
        h.conda_install,
        arg("prefix", Path, "The environment folder to create or update."),
        FILE,
        opt("dry_run", "--dry-run", help="Show the transaction; change nothing."),
        OFFLINE,
        UPDATE,
        opt(
            "backend",
            "--backend",
            kind=str,
            choices=BACKENDS,
            metavar="NAME",
            help="rattler (embedded, default), or an installed conda, mamba, micromamba "
            "(overrides the env file's `_pmpm.backend`).",
        ),
        JOBS,
        KEEP_BUILD,
        FRESH,
        REBUILD,
        CHANNEL_ALIAS,
        SLURM,
        TARGETS,
        opt(
            "lock",
            "--lock",
            kind=Path,
            metavar="FILE",
            help="Rebuild what a `pmpm export` lock file describes (no solve).",
        ),
        opt(
            "target",
            "--target",
            kind=str,
            metavar="TARGET",
            complete="target",
            help="With --lock: build compiled packages for this archspec target.",
        ),
    ),
    _c(
        "system_install",
        "Compile the `_pmpm` packages with the host's compilers and MPI into PREFIX/compile.",
        "Compile the `_pmpm` packages with the host's compilers and MPI into PREFIX/compile, beside a "
        "conda stack in PREFIX/conda (or --conda-prefix, or none with `_pmpm: {conda: false}`).",
        h.system_install,
        arg("prefix", Path, "The folder for both stacks: PREFIX/conda and PREFIX/compile."),
        opt(
            "file",
            "--file",
            "-f",
            kind=Path,
            required=True,
            metavar="FILE",
            help="The environment file (environment.yml).",
        ),
        opt(
            "conda_prefix",
            "--conda-prefix",
            kind=Path,
            metavar="DIR",
            help="Put (or keep) the conda stack here instead of PREFIX/conda.",
        ),
        opt("dry_run", "--dry-run", help="Show what would change; change nothing."),
        OFFLINE,
        UPDATE,
        JOBS,
        KEEP_BUILD,
        FRESH,
        REBUILD,
        CHANNEL_ALIAS,
        SLURM,
        TARGETS,
    ),
    _c(
        "plan",
        "Show what conda_install would do to PREFIX, each step and why; change nothing.",
        "",
        h.plan,
        PREFIX,
        opt("file", "--file", "-f", kind=Path, required=True, metavar="FILE", help="The environment file."),
        opt("offline", "--offline", help="No network."),
        AS_JSON,
        opt(
            "check",
            "--check",
            help="Exit 1 when a run would change anything, 0 when PREFIX is up to date (for CI).",
        ),
        opt(
            "commands",
            "--commands",
            help="Also show the commands each build would run (with its folders and environment); "
            "nothing is built.",
        ),
    ),
    _c(
        "host",
        "The CPU target, its features, the compilers and MPIs found, and what pmpm would use.",
        "",
        h.host,
        opt(
            "target",
            "--target",
            kind=str,
            default="host",
            metavar="TARGET",
            complete="target",
            help="Any archspec target instead of the host's (shown even if this machine cannot run it).",
        ),
        opt("targets", "--targets", help="List all known target names."),
        opt(
            "prefix",
            "--prefix",
            kind=Path,
            metavar="PREFIX",
            help="Also consider the conda MPI of this environment.",
        ),
        AS_JSON,
    ),
    _c(
        "module",
        "Write Lmod and/or Tcl modulefiles that make PREFIX available with `module load`.",
        "",
        h.module,
        PREFIX,
        opt(
            "lmod",
            "--lmod",
            kind=Path,
            metavar="DIR",
            help="Write a Lua modulefile under this MODULEPATH folder.",
        ),
        opt(
            "tcl",
            "--tcl",
            kind=Path,
            metavar="DIR",
            help="Write a Tcl modulefile under this MODULEPATH folder.",
        ),
        opt(
            "name",
            "--name",
            kind=str,
            metavar="NAME",
            help="NAME or NAME/VERSION (default: the env's name / short environment id).",
        ),
    ),
    _c(
        "activate",
        'Print a script that activates PREFIX without conda: eval "$(pmpm activate PREFIX)".',
        "",
        h.activate,
        PREFIX,
        SHELL,
    ),
    _c(
        "deactivate",
        'Print a script that undoes `pmpm activate`: eval "$(pmpm deactivate)".',
        "",
        h.deactivate,
        SHELL,
    ),
    _c(
        "record",
        "Show what PREFIX holds and how it was made, with its environment id.",
        "",
        h.record,
        arg("prefix", Path, "The environment folder (or a record.json file)."),
        AS_JSON,
    ),
    _c(
        "verify",
        "Check PREFIX against its record; exit non-zero when anything differs.",
        "Check PREFIX against its record: missing, modified and extra files, packages changed behind pmpm's "
        "back. Exits non-zero when anything differs.",
        h.verify,
        PREFIX,
        AS_JSON,
    ),
    _c(
        "list",
        "List the packages in PREFIX as `conda list` does, compiled ones with target, source, build key.",
        "",
        h.list_packages,
        PREFIX,
        AS_JSON,
    ),
    _c(
        "remove",
        "Remove the environment PREFIX with its modulefiles, Jupyter kernel and conda registration.",
        "Remove the environment PREFIX with its modulefiles, Jupyter kernel and its line in "
        "~/.conda/environments.txt, after asking (or with --yes). A folder that is no environment "
        "is refused.",
        h.remove,
        PREFIX,
        YES,
    ),
    _c(
        "clean",
        "Show what pmpm's cache frees: downloads, sources, build folders, logs; --yes removes them.",
        "Show what removing pmpm's package cache, sources, build folders and logs would free; --yes "
        "removes them (compiled packages stay: see `pmpm cache prune`); what a running install uses is "
        "kept.",
        h.clean,
        YES,
        AS_JSON,
    ),
    _c(
        "repair",
        "Reinstall the packages whose files `pmpm verify` finds missing or modified.",
        "Reinstall the packages (conda or compiled) whose files `pmpm verify` finds missing or "
        "modified, from the package cache or their channel; then verify again.",
        h.repair,
        PREFIX,
    ),
    _c(
        "diff",
        "Compare two environments: packages, versions, flags, targets. Exits 1 when they differ.",
        "",
        h.diff,
        arg("a", Path, "An environment folder or a record.json file."),
        arg("b", Path, "Another one."),
        AS_JSON,
    ),
    _c(
        "export",
        "Write a portable lock file to rebuild PREFIX elsewhere.",
        "Write a portable lock (rattler/pixi format plus pmpm's recipes and sources) to rebuild PREFIX "
        "elsewhere with `pmpm conda_install NEWPREFIX --lock FILE`.",
        h.export,
        PREFIX,
        opt(
            "output",
            "--output",
            "-o",
            kind=Path,
            required=True,
            metavar="FILE",
            help="The lock file to write.",
        ),
    ),
    _c(
        "run",
        "Run CMD in PREFIX, activated, after checking it; its exit code is pmpm's.",
        "",
        h.run,
        PREFIX,
        arg(
            "command",
            str,
            "The command and its arguments, after `--`.",
            repeat=True,
            required=True,
            metavar="CMD",
        ),
        opt(
            "expect",
            "--expect",
            kind=str,
            metavar="ID",
            help="Refuse to run unless the environment id is this.",
        ),
        opt(
            "provenance",
            "--provenance",
            kind=Path,
            metavar="FILE",
            help="Write the run's provenance (JSON) here.",
        ),
        opt("no_verify", "--no-verify", help="Do not check the prefix against its record first."),
    ),
    _c(
        "cache list",
        "List the compiled packages in the cache: name, version, build key, size, last use.",
        "",
        h.cache_list,
        opt(
            "folder",
            "--cache",
            kind=Path,
            metavar="DIR",
            help="A shared cache folder instead of the local build channel.",
        ),
        AS_JSON,
    ),
    _c(
        "cache push",
        "Copy compiled packages from the local build channel into a shared cache folder, indexed.",
        "",
        h.cache_push,
        arg("dest", Path, "A folder channel others read (shared disk, web root)."),
        arg("names", str, "Only these packages (default: all).", repeat=True, metavar="NAME"),
    ),
    _c(
        "cache prune",
        "Remove compiled packages from the local build channel.",
        "Remove compiled packages from the local build channel (installing or building one counts as use).",
        h.cache_prune,
        opt(
            "older_than",
            "--older-than",
            kind=float,
            metavar="DAYS",
            help="Remove packages not used for this many days.",
        ),
        opt("everything", "--all", help="Remove every package."),
    ),
    _c(
        "cache check",
        "Rebuild PREFIX's compiled packages in clean folders and compare: identical, or what differs.",
        "Rebuild the compiled packages of PREFIX (or only NAMEs) from the inputs its record names, in a "
        "new cache folder (only downloads are shared) with --fresh, and compare each rebuild with the "
        "recorded package's sha256, with the copy in the build channel and with the files installed in "
        "PREFIX: identical, or the files that differ and, for ELF files, which sections. Exit code 1 "
        "when anything differs.",
        h.cache_check,
        PREFIX,
        arg("names", str, "Only these compiled packages (default: all).", repeat=True, metavar="NAME"),
        OFFLINE,
    ),
    _c(
        "recipes list",
        "List the recipes pmpm can build: name, version, build system, where it comes from.",
        "",
        h.recipes_list,
        RECIPE_DIRS,
        AS_JSON,
    ),
    _c(
        "recipes show",
        "Print a recipe.",
        "",
        h.recipes_show,
        arg("name", str, "The recipe's name.", complete="recipe"),
        RECIPE_DIRS,
        AS_JSON,
    ),
)
