"""The parameters several ``pmpm`` commands share, declared once for :mod:`pmpm.commands.catalog`."""

from __future__ import annotations

from pathlib import Path

from pmpm.commands.declare import arg, opt

SHELLS = ("bash", "zsh", "fish")

FILE = opt("file", "--file", "-f", kind=Path, metavar="FILE", help="The environment file (environment.yml).")
OFFLINE = opt("offline", "--offline", help="Use only local channels and cached repodata; no network.")
UPDATE = opt("update", "--update", help="Re-solve for the newest packages instead of keeping installed ones.")
JOBS = opt(
    "jobs", "--jobs", "-j", kind=int, default=0, metavar="N", help="Parallel build jobs (default: all cores)."
)
KEEP_BUILD = opt("keep_build", "--keep-build", help="Keep each package's build folder (printed).")
FRESH = opt("fresh", "--fresh", help="Rebuild every compiled package from a clean build folder.")
REBUILD = opt(
    "rebuild",
    "--rebuild",
    kind=str,
    repeat=True,
    metavar="NAME",
    help="Build this compiled package again even if up to date (repeatable).",
)
SLURM = opt(
    "slurm",
    "--slurm",
    help="Build each target's compiled packages as a Slurm job on a node of that target "
    "(settings: `_pmpm.slurm`; PREFIX and pmpm's cache must be on a filesystem the nodes share).",
)
CHANNEL_ALIAS = opt(
    "channel_alias",
    "--channel-alias",
    kind=str,
    metavar="URL",
    help="Base URL for channel names (default: $PMPM_CHANNEL_ALIAS or anaconda.org).",
)
PREFIX = arg("prefix", Path, "The environment folder.")
SHELL = opt(
    "shell",
    "--shell",
    kind=str,
    choices=SHELLS,
    default="bash",
    metavar="SHELL",
    help="The shell that evaluates the script: bash, zsh or fish.",
)
RECIPE_DIRS = opt(
    "recipes",
    "--recipes",
    "-r",
    kind=Path,
    repeat=True,
    metavar="DIR",
    help="Extra recipe folders, searched first (repeatable).",
)
AS_JSON = opt("as_json", "--json", help="Print it as JSON (the shapes are in docs/json.md).")
YES = opt("yes", "--yes", "-y", help="Do it without asking.")
TARGETS = opt(
    "targets",
    "--targets",
    kind=str,
    metavar="T1,T2",
    complete="target",
    help="Build the compiled packages for these archspec targets, a stack each (overrides the env "
    "file's `_pmpm.targets`/`target`; `host` is this machine).",
)
