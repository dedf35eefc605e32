"""``pmpm plan --commands``: the commands each planned build would run, run by nobody (EasyBuild's
extended dry run).

The builders are asked for their steps exactly as a build asks them (:mod:`pmpm.build.schedule`),
with the same build folder, prefix, flags, environment and share of ``--jobs``; nothing is
unpacked or built. A builder looks at the source tree (autotools runs ``autoreconf`` only when
there is no ``configure``; a recipe without a build system is recognised by its files), so it is
shown a stand-in: a local tree itself, or for an archive or a git commit a folder holding only
the names at the tree's top (and the few files detection reads), made aside and removed; every
path into the stand-in is then written as the path the build would use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pmpm.build import schedule
from pmpm.build.binary_cache import build_channel
from pmpm.build.environment import build_env
from pmpm.build.execute import _configure_identity, command_line, configure_stamp, test_steps
from pmpm.builders import BuildContext, registry
from pmpm.builders import Step as Command
from pmpm.conda import engine as conda
from pmpm.sources.epoch import source_date_epoch
from pmpm.sources.extract import _members
from pmpm.sources.transport import run_git

if TYPE_CHECKING:
    from pmpm.build.compile_stage import Compiler
    from pmpm.build.plan import Step

#: files whose contents a builder's detection reads (the rest it only looks for)
READ_FILES = ("pyproject.toml", "setup.py")
#: what stands for a path that exists only once the source is unpacked
UNKNOWN_TREE = "<source tree of {name}, once unpacked>"


@dataclass(frozen=True)
class Planned:
    phase: str  # configure | build | install | script | test
    argv: list[str]
    cwd: str
    env: dict[str, str]  # this command's additions to the build's environment
    skipped: bool = False  # a kept local build's configure step that has not changed

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "argv": self.argv,
            "cwd": self.cwd,
            "env": self.env,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class BuildCommands:
    """What building one package would run, and where."""

    name: str
    version: str
    builder: str
    work: str  # the build folder (source copy, build and staging folders)
    source: str  # the source tree the build would see
    prefix: str  # the prefix it is built for (the padded build prefix, or PREFIX)
    environment: dict[str, str]  # what pmpm sets for every command, beyond the caller's own
    commands: list[Planned]
    package: str  # the package file it would make
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "commands": [c.to_dict() for c in self.commands]}


def preview(compiler: Compiler, steps: list[Step], installed: list[Any]) -> list[BuildCommands]:
    """The commands of each package ``steps`` would build (not those up to date or cached),
    ``installed``: the records the compiled stack would hold (the solve's)."""
    built = [s for s in steps if s.compiles]
    share = schedule.job_share(compiler, built)
    return [_one(compiler, step, share, installed) for step in built]


def _one(compiler: Compiler, step: Step, jobs: int, installed: list[Any]) -> BuildCommands:
    recipe, place = step.recipe, step.place
    host = compiler.host(step.target)
    work = schedule.work_dir(compiler, step)
    flags = compiler.flags(host, place, work)
    prefix = place or compiler.prefix
    python = compiler.python_exe()
    notes = []
    if place is not None:
        needed = schedule.host_needs(step, installed)
        if any(r.name.normalized == "python" for r in needed):
            python = place / "bin" / "python"
        names = ", ".join(r.name.normalized for r in needed) or "nothing"
        notes.append(f"prepare: the build prefix {place} is made afresh with {names}")
    epoch = source_date_epoch(compiler.sources, step.fetched)
    env = build_env(compiler, host, flags, recipe.env, jobs=jobs, where=place, python=python, epoch=epoch)
    with _stand_in(compiler, step, work) as (seen, real):
        builder = (
            registry.get(recipe.system, where=recipe.origin)
            if recipe.system
            else registry.detect(seen)
            if seen is not None
            else None
        )
        ctx = BuildContext(
            name=step.name,
            version=recipe.version,
            source_dir=seen or Path(real),
            build_dir=work / "build",
            stage_dir=work / "stage",
            prefix=prefix,
            jobs=jobs,
            flags=flags,
            env=env,
            args=tuple(recipe.args),
            python=python,
            script=recipe.script,
        )
        commands = list(builder.steps(ctx)) if builder is not None else []
        if recipe.test_commands and compiler.spec.pmpm.tests:
            tested = place or ctx.staged_prefix
            commands += test_steps(
                recipe.test_commands, test_prefix=tested, built_for=prefix, env=env, cwd=ctx.build_dir
            )
        planned = [_planned(cmd, env, ctx, step.source.kind == "path") for cmd in commands]
        if seen is not None:
            planned = [_replaced(p, str(seen), real) for p in planned]
    if builder is None:
        notes.append("the build system is recognised from the source's files, once it is unpacked")
    package = build_channel() / conda.host_subdir() / step.filename
    notes.append(f"pack: {package}, then installed into {compiler.prefix}")
    own = {k: v for k, v in env.items() if os.environ.get(k) != v}
    return BuildCommands(
        name=step.name,
        version=str(recipe.version),
        builder=builder.name if builder is not None else "?",
        work=str(work),
        source=real,
        prefix=str(prefix),
        environment=own,
        commands=planned,
        package=str(package),
        notes=notes,
    )


def _planned(cmd: Command, env: dict[str, str], ctx: BuildContext, local: bool) -> Planned:
    skipped = False
    if cmd.name == "configure" and local:  # a kept build folder: run again only when it changed
        stamp = configure_stamp(ctx.build_dir, cmd)
        skipped = stamp.is_file() and stamp.read_text() == _configure_identity(cmd, env)
    return Planned(cmd.name, command_line(cmd), str(cmd.cwd), dict(cmd.env), skipped)


def _replaced(planned: Planned, seen: str, real: str) -> Planned:
    def fix(text: str) -> str:
        return text.replace(seen, real)

    return Planned(
        planned.phase,
        [fix(a) for a in planned.argv],
        fix(planned.cwd),
        {k: fix(v) for k, v in planned.env.items()},
        planned.skipped,
    )


@contextmanager
def _stand_in(compiler: Compiler, step: Step, work: Path) -> Iterator[tuple[Path | None, str]]:
    """(a tree the builder may look at, or None; the path the build's tree will have)."""
    fetched = step.fetched
    spec = fetched.spec
    if spec.kind == "path":
        # the build mirrors the tree into its folder and builds the copy, which keeps what the
        # last build made there (a generated ``configure``): the copy when there is one
        copy = work / "src"
        yield (copy if copy.is_dir() else spec.path), str(copy)
        return
    entries: dict[str, bytes | None] | None = None  # top-level name: contents (None: a folder)
    top = ""
    if fetched.archive is not None:
        entries, top = _archive_top(fetched.archive)
    elif spec.kind == "git":
        entries, top = _git_top(compiler, step)
    if entries is None:
        yield None, UNKNOWN_TREE.format(name=step.name)
        return
    real = work / "src" / top if top else work / "src"
    folder = Path(tempfile.mkdtemp(prefix=f"pmpm-plan-{step.name}-"))
    try:
        for name, data in entries.items():
            if data is None:
                (folder / name).mkdir()
            else:
                (folder / name).write_bytes(data)
        yield folder, str(real)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _archive_top(archive: Path) -> tuple[dict[str, bytes | None], str]:
    """The names at the top of the tree an archive unpacks to (``extract.top_folder``'s rule:
    its single folder, else the archive's root), with the files detection reads."""

    names: dict[tuple[str, ...], bytes | None] = {}  # None: a folder
    with _members(archive) as members:
        for member, opener in members:
            parts = tuple(p for p in PurePosixPath(member.name).parts if p not in (".", "/"))
            if not parts or ".." in parts:
                continue
            for depth in (1, 2):
                if len(parts) > depth:
                    names.setdefault(parts[:depth], None)  # a folder above the member
            if len(parts) > 2:
                continue
            if member.kind == "dir":
                names.setdefault(parts, None)
            elif parts[-1] in READ_FILES and member.kind == "file":
                with opener() as handle:
                    names[parts] = handle.read()
            else:
                names[parts] = b""
    firsts = {p[0] for p in names}
    only = next(iter(firsts)) if len(firsts) == 1 else ""
    top = only if only and names[(only,)] is None else ""
    depth = 2 if top else 1
    return {p[-1]: d for p, d in names.items() if len(p) == depth and (not top or p[0] == top)}, top


def _git_top(compiler: Compiler, step: Step) -> tuple[dict[str, bytes | None] | None, str]:
    """The names at the top of a git commit's tree (the cached mirror has it)."""

    spec = step.fetched.spec
    mirror = compiler.sources._mirror_path(spec.git)
    commit = step.fetched.identity.removeprefix("git:")
    if not mirror.is_dir():
        return None, ""
    listing = run_git(["ls-tree", commit], mirror, f"cannot list commit {commit}", spec.where)
    entries: dict[str, bytes | None] = {}
    for line in listing.splitlines():
        meta, _, name = line.partition("\t")
        if not name or "/" in name or name in (".", ".."):
            continue
        is_dir = meta.split()[1] == "tree"
        data = b""
        if not is_dir and name in READ_FILES:
            data = run_git(["show", f"{commit}:{name}"], mirror, f"cannot read {name}", spec.where).encode()
        entries[name] = None if is_dir else data
    if len(entries) == 1 and next(iter(entries.values())) is None:
        return None, ""  # one folder at the top: the tree is inside it (rare; not looked into)
    return entries, ""
