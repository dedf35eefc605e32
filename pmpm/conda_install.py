"""``pmpm conda_install``: make PREFIX the conda environment an env file describes.

Order of work, each step cheap before the next costly one: the no-op check (file hash + stats),
then parse, resolve channels, take the prefix lock, repair an interrupted run, solve, show or
apply the transaction under a journal, pip, variables, and finally the state that makes the next
identical run a no-op. Any failure after the journal is written puts PREFIX back as it was.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pmpm import journal, state
from pmpm.errors import PmpmError

Say = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    prefix: Path
    file: Path
    dry_run: bool = False
    offline: bool = False
    update: bool = False
    backend: str = "rattler"
    channel_alias: str | None = None
    jobs: int = 0  # 0: all cores
    keep_build: bool = False

    def fingerprint(self) -> dict[str, str]:
        """The options that change what PREFIX ends up holding."""
        from pmpm.channels import channel_alias

        return {"backend": self.backend, "channel_alias": channel_alias(self.channel_alias)}


def _print(text: str) -> None:
    print(text, flush=True)  # flushed: a second run waiting on the lock must say so at once


def run(opts: Options, say: Say = _print) -> int:
    prefix = opts.prefix.expanduser().absolute()
    try:
        env_bytes = opts.file.read_bytes()
    except OSError as exc:
        raise PmpmError(
            f"cannot read the env file: {exc.strerror}",
            where=str(opts.file),
            hint="check the path given with --file",
        ) from None
    want = state.expected(env_bytes, opts.fingerprint())
    if not (opts.dry_run or opts.update) and state.up_to_date(prefix, want):
        say(f"{prefix} is up to date with {opts.file}")
        return 0

    from pmpm.spec import load_env_file

    spec = load_env_file(opts.file)
    for note in [*spec.pmpm.notes, *_not_yet(spec.pmpm)]:
        say(f"note: {note}")
    _refuse_unsupported(spec)
    _refuse_foreign_folder(prefix)

    if opts.dry_run:
        return _dry_run(spec, prefix, opts, say)

    from pmpm.prefix_lock import prefix_lock

    created = not prefix.exists()
    try:
        with prefix_lock(prefix, on_wait=say):
            if journal.pending(prefix):
                say(f"repairing {prefix}: a previous pmpm run was interrupted")
                journal.restore(prefix)
            if state.up_to_date(prefix, want) and not opts.update:
                say(f"{prefix} is up to date with {opts.file}")
                return 0
            _apply(spec, prefix, opts, want, say)
    except BaseException:
        if created and _only_pmpm_left(prefix):
            shutil.rmtree(prefix, ignore_errors=True)
        raise
    return 0


#: `_pmpm` keys that load and validate but that this version does not act on yet
_NOT_YET = {
    "cache": "binary caches",
    "modules": "module files",
    "jupyter_kernel": "Jupyter kernels",
}


def _not_yet(section) -> list[str]:
    return [
        f"`_pmpm.{key}` is read but not acted on yet: {what} come in a later pmpm version"
        for key, what in _NOT_YET.items()
        if getattr(section, key, None) not in (None, {}, [], False)
    ]


def _refuse_unsupported(spec) -> None:
    from pmpm.errors import located

    if spec.explicit:
        raise PmpmError(
            "explicit package lists (@EXPLICIT) are read but not installed by this version of pmpm",
            where=located(spec.path, 1),
            hint="use an environment.yml with channels and dependencies",
        )


def _refuse_foreign_folder(prefix: Path) -> None:
    """Like conda, never take over a non-empty folder that is not an environment."""
    if prefix.is_dir() and not (prefix / "conda-meta").is_dir() and any(prefix.iterdir()):
        raise PmpmError(
            f"{prefix} exists, is not empty and is not a conda environment (no conda-meta folder)",
            hint="choose a new or empty folder as PREFIX",
        )
    if prefix.exists() and not prefix.is_dir():
        raise PmpmError(f"{prefix} exists and is not a folder", hint="choose another PREFIX")


def _only_pmpm_left(prefix: Path) -> bool:
    """After a failed first run: is all that is left pmpm's own lock folder?"""
    if not prefix.is_dir():
        return False
    for root, _dirs, files in os.walk(prefix):
        rel = os.path.relpath(root, prefix)
        if files and rel != str(journal.PMPM_DIR):
            return False
    return True


def _compiler(spec, prefix: Path, opts: Options, say: Say):
    if not spec.pmpm.packages:
        return None
    from pmpm.compile_stage import Compiler

    return Compiler(spec, prefix, jobs=opts.jobs, offline=opts.offline, say=say, keep_build=opts.keep_build)


def _channels_and_specs(spec, opts: Options):
    """The resolved channels and the specs as the solver (or an external tool) gets them."""
    from pmpm.channels import resolve_channels, spec_for_solver

    channels = resolve_channels(spec, alias_override=opts.channel_alias)
    specs = [
        spec_for_solver(d, alias_override=opts.channel_alias, base_dir=spec.path.parent)
        for d in spec.dependencies
    ]
    return channels, specs


def _solve(spec, prefix: Path, opts: Options, extra: list[str]):
    from pmpm import conda
    from pmpm.errors import located

    channels, specs = _channels_and_specs(spec, opts)
    installed = conda.installed_records(prefix)
    conda_installed = [r for r in installed if not conda.is_compiled(r)]
    describe = {d.name: located(spec.path, d.line) for d in spec.dependencies}
    records = conda.solve(
        specs + extra,
        channels,
        subdir=conda.host_subdir(),
        locked=[] if opts.update else conda_installed,
        offline=opts.offline,
        describe=describe,
    )
    return channels, specs, installed, records


def _dry_run(spec, prefix: Path, opts: Options, say: Say) -> int:
    from pmpm import conda

    compiler = _compiler(spec, prefix, opts, say)
    _, _, installed, records = _solve(spec, prefix, opts, compiler.conda_specs() if compiler else [])
    changes = conda.diff([r for r in installed if not conda.is_compiled(r)], records)
    if changes:
        say(f"dry run: would change {prefix} as follows (nothing was changed):")
        for change in changes:
            say(str(change))
    else:
        say(f"dry run: {prefix} already has these {len(records)} conda packages; nothing to change")
    if compiler:
        say("compiled packages:")
        for step in compiler.plan(installed):
            say(f"  {step.explain()}")
    return 0


def _apply(spec, prefix: Path, opts: Options, want: state.State, say: Say) -> None:
    from pmpm import conda, variables
    from pmpm.pip_stage import install_pip

    compiler = _compiler(spec, prefix, opts, say)
    if opts.backend != "rattler":
        channels = _run_backend(spec, prefix, opts, compiler, say)
        _finish(prefix, want, channels, compiler)
        say(f"{prefix} is ready ({opts.backend})")
        return

    channels, specs, installed, records = _solve(
        spec, prefix, opts, compiler.conda_specs() if compiler else []
    )
    compiled = {r.name.normalized for r in installed if conda.is_compiled(r)}
    changes = conda.diff([r for r in installed if not conda.is_compiled(r)], records)
    damaged = conda.damaged_packages(prefix, installed)
    vars_changed = variables.read(prefix) != spec.variables
    steps = compiler.plan(installed) if compiler and not changes else None
    wanted = {s.name for s in steps} if steps is not None else None
    idle = steps is not None and all(s.decision == "up to date" for s in steps)
    if (
        not (changes or damaged or vars_changed or spec.pip)
        and (compiler is None or idle)
        and (compiled <= (wanted or set()))
    ):
        _finish(prefix, want, channels, compiler)
        say(f"{prefix} already has what {opts.file} asks for ({len(records) + len(compiled)} packages)")
        return

    keep = {r.url for r in installed if r.name.normalized not in damaged}
    conda.verify_local_sha256([r for r in records if r.url not in keep])
    for change in changes:
        say(str(change))
    if damaged:
        say("relinking damaged packages: " + ", ".join(sorted(damaged)))
    journal.begin(prefix)
    try:
        if changes or damaged:
            conda.install(
                records, prefix, installed=installed, requested=specs, reinstall=damaged, ignored=compiled
            )
        variables.write(prefix, spec.variables)
        install_pip(spec, prefix, offline=opts.offline)
        _compile(compiler, prefix, steps, say, compiled)
    except BaseException:
        try:
            journal.restore(prefix)
        except PmpmError as exc:
            say(f"could not put {prefix} back as it was: {exc}")
        raise
    journal.commit(prefix)
    _finish(prefix, want, channels, compiler)
    built = len(compiler.planned) if compiler else 0
    say(f"{prefix} is ready: {len(records)} conda packages, {built} compiled")


def _compile(compiler, prefix: Path, steps, say: Say, compiled: set[str] | None = None) -> None:
    """Build what changed, then drop compiled packages the env file no longer lists.

    ``compiled`` names the compiled packages the prefix held before (None: unknown, read them);
    with none before and none wanted there is nothing to read back.
    """
    from pmpm import conda

    if compiler is not None:
        if steps is None:
            steps = compiler.plan(conda.installed_records(prefix))
        compiler.run(steps)
    wanted = {s.name for s in steps} if compiler is not None else set()
    if compiled is not None and compiled <= wanted:
        return
    from pmpm.compile_stage import remove_compiled

    removed = remove_compiled(prefix, conda.installed_records(prefix), wanted)
    if removed:
        say("removed compiled packages no longer listed: " + ", ".join(removed))


def _run_backend(spec, prefix: Path, opts: Options, compiler, say: Say):
    from pmpm import backends
    from pmpm.pip_stage import install_pip

    channels, specs = _channels_and_specs(spec, opts)
    specs += compiler.conda_specs() if compiler else []
    backends.executable(opts.backend)
    journal.begin(prefix)
    try:
        backends.install_with(opts.backend, spec, prefix, channels, specs, offline=opts.offline)
        install_pip(spec, prefix, offline=opts.offline)
        _compile(compiler, prefix, None, say)
    except BaseException:
        journal.restore(prefix)
        raise
    journal.commit(prefix)
    return channels


def _finish(prefix: Path, want: state.State, channels, compiler=None) -> None:
    """Record what made this result so that an identical next run is a no-op."""
    from pmpm.conda import host_subdir

    watched = []
    for channel in channels:
        if channel.local_path is not None:
            for subdir in (host_subdir(), "noarch"):
                watched += [channel.local_path / subdir / "repodata.json"]
    if compiler is not None:
        watched += compiler.watched_files()
        want.volatile = compiler.has_local_sources()
    state.watch(want, watched)
    want.records = state.records_digest(prefix)
    want.save(prefix)
