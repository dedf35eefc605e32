"""Build one planned package into a genuine ``.conda``: unpack, build, stage, test, pack.

Nothing here touches PREFIX: the build installs into a staging root and the result is a package
file in the build channel; its tests then run in a test prefix that holds it (``run_tests``).
Every command's output goes to the package's log (in pmpm's cache; a finished build's log is then
kept beside its package and in PREFIX, :mod:`pmpm.build.provenance`); a failing step raises
with the package, the step, the last lines of the log and its path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pmpm.build.package import PackageMeta, pack
from pmpm.build.rpath import relative_rpaths
from pmpm.builders import BuildContext, Flags
from pmpm.builders import Step as Command
from pmpm.errors import PmpmError
from pmpm.runlog import TAIL_LINES, disk_full_in_log, log_path


@dataclass(frozen=True)
class PackageBuild:
    """One package's finished build (a plan's outcome is :class:`pmpm.build.result.BuildResult`)."""

    package: Path  # the .conda file
    log: Path
    files: int
    staged: Path  # the staged files, laid out as in the prefix (until the build folder goes)


def _tail(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
    return "\n".join(lines)


def command_line(cmd: Command) -> list[str]:
    """The argument list a build command runs as."""
    if cmd.shell:
        # shell: the recipe's own explicit `script:`, the one place a recipe runs a shell
        # shell: recipe test commands run in bash, as documented
        return ["bash", "-e", "-c", *map(str, cmd.argv)]
    return list(map(str, cmd.argv))


def run_command(cmd: Command, base_env: dict[str, str], log: Path, *, package: str) -> None:
    """Run one build command with its output appended to ``log``; raise on failure."""
    env = {**base_env, **cmd.env}
    argv = command_line(cmd)
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"\n=== {package}: {cmd.name} (in {cmd.cwd})\n$ {shlex.join(argv)}\n")
        handle.flush()
        try:
            proc = subprocess.run(
                argv,
                cwd=cmd.cwd,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                check=False,
            )
        except OSError as exc:
            handle.write(f"cannot run {argv[0]}: {exc}\n")
            raise PmpmError(
                f"building {package} failed at step `{cmd.name}`: cannot run {argv[0]} ({exc.strerror})",
                hint="install the missing tool or put it on PATH",
                log=log,
            ) from None
    if proc.returncode != 0:
        disk_full_in_log(log, f"building {package}, step `{cmd.name}`", Path(cmd.cwd))
        raise PmpmError(
            f"building {package} failed at step `{cmd.name}` (exit code {proc.returncode}); "
            f"last lines of the log:\n{_tail(log)}",
            hint="fix the recipe or the source; PREFIX was left as it was "
            "(use --keep-build to keep the build folder)",
            log=log,
        )


def run_tests(
    commands: list[str],
    *,
    test_prefix: Path,
    built_for: Path,
    env: dict[str, str],
    cwd: Path,
    log: Path,
    package: str,
) -> None:
    """A recipe's tests, each run by ``bash -e`` like a recipe's ``script:``, in a prefix that
    holds the package and what it requires (as conda-build tests a package): ``$PREFIX`` and
    ``{{ prefix }}`` (rendered as ``built_for``, the prefix the package was built for) name it.
    """
    for step in test_steps(commands, test_prefix=test_prefix, built_for=built_for, env=env, cwd=cwd):
        run_command(step, env, log, package=package)


def test_steps(
    commands: list[str], *, test_prefix: Path, built_for: Path, env: dict[str, str], cwd: Path
) -> list[Command]:
    """The commands :func:`run_tests` runs (``pmpm plan --commands`` shows them too)."""
    prefix = str(test_prefix)
    site = sorted(test_prefix.glob("lib/python*/site-packages"))
    extra = {
        "PREFIX": prefix,
        "PATH": os.pathsep.join([str(test_prefix / "bin"), env.get("PATH", "")]),
        "LD_LIBRARY_PATH": os.pathsep.join(
            p for p in (str(test_prefix / "lib"), str(built_for / "lib"), env.get("LD_LIBRARY_PATH")) if p
        ),
        "PKG_CONFIG_PATH": os.pathsep.join(
            [
                *(str(test_prefix / sub / "pkgconfig") for sub in ("lib", "share")),
                env.get("PKG_CONFIG_PATH", ""),
            ]
        ),
        "STAGE_PREFIX": prefix,
    }
    if site:
        extra["PYTHONPATH"] = os.pathsep.join([*map(str, site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    steps = []
    for command in commands:
        text = command.replace(str(built_for), prefix) if built_for != test_prefix else command
        steps.append(Command("test", (text,), cwd, extra, shell=True))  # shell: recipe tests, by bash -e
    return steps


#: what a configure step bakes into the build folder besides its own arguments
_CONFIGURE_ENV = ("CC", "CXX", "FC", "F77", "CFLAGS", "CXXFLAGS", "FFLAGS", "FCFLAGS", "CPPFLAGS", "LDFLAGS",
                  "PKG_CONFIG_PATH", "CMAKE_PREFIX_PATH", "PATH")  # fmt: skip


def configure_stamp(build_dir: Path, cmd: Command) -> Path:
    """Where a kept build folder notes what its configure step ``cmd`` last ran with: one per
    tool and folder, so a step that comes or goes (``autoreconf`` once ``configure`` exists in
    the kept copy of the tree) does not make the others look changed."""
    slot = hashlib.sha256(f"{cmd.cwd}\0{cmd.argv[0] if cmd.argv else ''}".encode()).hexdigest()[:12]
    return build_dir / f".pmpm-configured-{slot}"


def _configure_identity(cmd: Command, env: dict[str, str]) -> str:
    full = {**env, **cmd.env}
    seen = {k: full.get(k) for k in (*_CONFIGURE_ENV, *cmd.env)}
    return json.dumps({"argv": list(map(str, cmd.argv)), "cwd": str(cmd.cwd), "env": seen})


def build_package(
    *,
    name: str,
    version: str,
    build_string: str,
    source_tree: Path,
    work: Path,
    prefix: Path,
    builder,
    flags: Flags,
    env: dict[str, str],
    args: list[str],
    script: str | None,
    jobs: int,
    python: Path | None,
    depends: list[str],
    out_dir: Path,
    extra: dict,
    incremental: bool = False,
    log: Path | None = None,
    phase: Callable[[str], None] | None = None,
    info: dict[str, str] | None = None,
) -> PackageBuild:
    """Configure, build, stage-install, test and pack one package; returns the package file.

    ``incremental``: the build folder is kept from the last build of this package (a local tree
    under development), so make/ninja recompile only what changed; the configure steps are run
    again only when their command or the compilers and flags they see changed.
    ``log``: where the commands' output goes (a new log by default); ``phase`` is told each
    phase as it starts (the steps' names, then ``pack``), for the progress display.
    ``info``: more files for the package's ``info/`` (its provenance: :mod:`pmpm.build.provenance`).
    """
    build_dir = work / "build"
    stage = work / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    build_dir.mkdir(parents=True, exist_ok=True)
    stage.mkdir(parents=True)
    ctx = BuildContext(
        name=name,
        version=version,
        source_dir=source_tree,
        build_dir=build_dir,
        stage_dir=stage,
        prefix=prefix,
        jobs=jobs,
        flags=flags,
        env=env,
        args=tuple(args),
        python=python,
        script=script,
    )
    log = log or log_path(name)
    tell = phase or (lambda _: None)
    current = None
    for cmd in builder.steps(ctx):
        if cmd.name != current:
            current = cmd.name
            tell(current)
        stamp = configure_stamp(build_dir, cmd)
        if cmd.name == "configure" and incremental:
            wanted = _configure_identity(cmd, env)
            if stamp.is_file() and stamp.read_text() == wanted:
                with log.open("a", encoding="utf-8") as handle:
                    handle.write(f"\n=== {name}: {cmd.name} skipped: same command and flags as last time\n")
                continue
            stamp.unlink(missing_ok=True)
            run_command(cmd, env, log, package=name)
            stamp.write_text(wanted)
            continue
        run_command(cmd, env, log, package=name)
    staged = ctx.staged_prefix
    if not staged.is_dir() or not any(staged.iterdir()):
        raise PmpmError(
            f"building {name} installed nothing into the staging folder {staged}",
            hint="the build system's install step must honour DESTDIR (or the recipe's script must "
            "install into $STAGE_PREFIX)",
            log=log,
        )
    relative_rpaths(staged, str(prefix))  # $ORIGIN/../lib: the libraries are found in any prefix
    epoch = env.get("SOURCE_DATE_EPOCH")  # the source's time, not the build's (pmpm.sources.epoch)
    timestamp = int(epoch) * 1000 if epoch and epoch.isdigit() else None
    tell("pack")
    meta = PackageMeta(name, version, build_string, depends=tuple(depends), extra=extra, timestamp=timestamp)
    package = pack(staged, meta, out_dir, placeholder=str(prefix), extra_info=info)
    files = sum(1 for _ in staged.rglob("*"))
    return PackageBuild(package, log, files, staged)
