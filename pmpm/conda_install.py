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
    backend: str | None = None  # None: the env file's `_pmpm.backend`, else rattler
    channel_alias: str | None = None
    jobs: int = 0  # 0: all cores
    keep_build: bool = False
    fresh: bool = False  # rebuild every compiled package from a clean build folder
    rebuild: tuple[str, ...] = ()  # compiled packages to build again even when up to date

    @property
    def forced(self) -> bool:
        """Work asked for even when the prefix is up to date."""
        return self.update or self.fresh or bool(self.rebuild)

    def fingerprint(self) -> dict[str, str]:
        """The options that change what PREFIX ends up holding."""
        from pmpm.channels import channel_alias

        return {"backend": self.backend or "", "channel_alias": channel_alias(self.channel_alias)}


def _print(text: str) -> None:
    print(text, flush=True)  # flushed: a second run waiting on the lock must say so at once


def run(opts: Options, say: Say = _print) -> int:
    from pmpm.layout import conda_layout

    return install(conda_layout(opts.prefix), opts, say)


def install(layout, opts: Options, say: Say = _print, *, choose_layout=None) -> int:
    """Make ``layout``'s stacks what the env file asks for (both commands end up here).

    ``choose_layout(spec)`` lets system_install decide the stacks from the env file's ``_pmpm``
    keys once it is parsed; the no-op check runs before that, on the layout as last written.
    """
    prefix = layout.compile  # pmpm's state and the no-op check live with the compiled stack
    try:
        env_bytes = opts.file.read_bytes()
    except OSError as exc:
        raise PmpmError(
            f"cannot read the env file: {exc.strerror}",
            where=str(opts.file),
            hint="check the path given with --file",
        ) from None
    want = state.expected(env_bytes, {**opts.fingerprint(), **_layout_fingerprint(layout)})
    if not (opts.dry_run or opts.forced) and state.up_to_date(prefix, want, layout.prefixes):
        say(f"{layout.root} is up to date with {opts.file}")
        return 0

    from pmpm.spec import load_env_file

    spec = load_env_file(opts.file)
    for note in [*spec.pmpm.notes, *_not_yet(spec.pmpm)]:
        say(f"note: {note}")
    _refuse_unsupported(spec)
    opts = _choose_backend(opts, spec, say)
    if choose_layout is not None:
        layout = choose_layout(spec)
        prefix = layout.compile
        want.options = {**want.options, **_layout_fingerprint(layout)}
    for stack in layout.prefixes:
        _refuse_foreign_folder(stack)

    if opts.dry_run:
        return _dry_run(spec, layout, opts, say)

    from contextlib import ExitStack

    from pmpm.prefix_lock import prefix_lock

    # folders to take back to nothing if this run fails: new ones, and empty ones (whose
    # emptiness is what "as it was" means)
    new = [p for p in (layout.root, *layout.prefixes) if not p.exists()]
    created = [*new, *(p for p in (layout.root, *layout.prefixes) if _is_empty_dir(p))]
    try:
        with ExitStack() as locks:
            for stack in layout.prefixes:
                locks.enter_context(prefix_lock(stack, on_wait=say))
            for stack in layout.prefixes:
                if journal.pending(stack):
                    say(f"repairing {stack}: a previous pmpm run was interrupted")
                    journal.restore(stack)
            if state.up_to_date(prefix, want, layout.prefixes) and not opts.forced:
                say(f"{layout.root} is up to date with {opts.file}")
                return 0
            _apply(spec, layout, opts, want, say)
    except BaseException:
        for folder in reversed(created):
            if _only_pmpm_left(folder):
                existed = folder.is_dir() and folder not in new
                shutil.rmtree(folder, ignore_errors=True)
                if existed:
                    folder.mkdir()
        raise
    return 0


def _choose_backend(opts: Options, spec, say: Say) -> Options:
    """The installer to use: ``--backend`` if given, else the env file's ``_pmpm.backend``
    (or the original pmpm's ``conda: mamba``), else the embedded one; says which when it is not
    simply the default."""
    from dataclasses import replace

    written = spec.pmpm.backend
    chosen = opts.backend or written or "rattler"
    if opts.backend and written and opts.backend != written:
        say(f"installer: {chosen} (--backend overrides `_pmpm.backend: {written}` of {spec.path})")
    elif not opts.backend and written:
        say(f"installer: {chosen} (`_pmpm.backend` of {spec.path})")
    return replace(opts, backend=chosen)


def _layout_fingerprint(layout) -> dict[str, str]:
    if layout.kind == "conda":
        return {}
    return {"layout": layout.kind, "conda_prefix": str(layout.conda), "compile_prefix": str(layout.compile)}


#: `_pmpm` keys that load and validate but that this version does not act on yet
_NOT_YET: dict[str, str] = {}


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


def _is_empty_dir(path: Path) -> bool:
    try:
        return path.is_dir() and not any(path.iterdir())
    except OSError:
        return False


def _only_pmpm_left(prefix: Path) -> bool:
    """After a failed first run: is all that is left pmpm's own lock folders?"""
    if not prefix.is_dir():
        return False
    for root, _dirs, files in os.walk(prefix):
        rel = os.path.relpath(root, prefix)
        if files and not (rel == str(journal.PMPM_DIR) or rel.endswith(os.sep + str(journal.PMPM_DIR))):
            return False
    return True


def _compiler(spec, layout, opts: Options, say: Say):
    if not spec.pmpm.packages:
        return None
    from pmpm.compile_stage import Compiler

    return Compiler(
        spec,
        layout.compile,
        jobs=opts.jobs,
        offline=opts.offline,
        say=say,
        keep_build=opts.keep_build,
        base=layout.conda,
        system=layout.kind == "system",
        fresh=opts.fresh,
        rebuild=frozenset(opts.rebuild),
    )


def _external_mpi(spec, layout, compiler):
    """The external MPI the conda stack must not duplicate, or None.

    Only decided before the solve when it does not depend on it: an explicit external setting,
    or system_install's automatic choice (the host's MPI); in conda_install mode an automatic
    choice prefers a conda MPI, so the solve is not constrained.
    """
    setting = spec.pmpm.mpi
    explicit = setting == "external" or (isinstance(setting, dict) and set(setting) & {"external", "module"})
    if not explicit and not (layout.kind == "system" and setting is None):
        return None
    if compiler is not None:
        mpi, _ = compiler.choose_mpi()
    else:
        from pmpm.compile_stage import choose_stack_mpi

        mpi, _ = choose_stack_mpi(
            setting, system=layout.kind == "system", base=layout.conda, prefix=layout.compile
        )
    return mpi if mpi is not None and mpi.provider == "external" else None


def _channels_and_specs(spec, opts: Options):
    """The resolved channels and the specs as the solver (or an external tool) gets them."""
    from pmpm.channels import resolve_channels, spec_for_solver

    channels = resolve_channels(spec, alias_override=opts.channel_alias)
    specs = [
        spec_for_solver(d, alias_override=opts.channel_alias, base_dir=spec.path.parent)
        for d in spec.dependencies
    ]
    return channels, specs


def _solve(spec, layout, opts: Options, compiler, say: Say):
    """Solve the conda stack; (channels, specs, its installed records, the solution)."""
    from pmpm import conda
    from pmpm.errors import located

    if layout.conda is None:
        if spec.dependencies:
            say("note: `_pmpm: {conda: false}`: the env file's conda dependencies are not installed")
        return [], [], [], []
    channels, specs = _channels_and_specs(spec, opts)
    extra = compiler.conda_specs() if compiler else []
    mpi = _external_mpi(spec, layout, compiler)
    constraints: list[str] = []
    if mpi is not None:  # (pmpm.mpi is imported only then: it is not small)
        from pmpm.mpi import conda_constraints

        constraints = conda_constraints(mpi)
    if constraints:
        say(
            f"MPI: conda packages that need one get conda-forge's external build "
            f"({', '.join(constraints)}) for the system's {mpi.vendor} {mpi.version}"
        )
    installed = conda.installed_records(layout.conda)
    conda_installed = [r for r in installed if not conda.is_compiled(r)]
    if not (specs or extra or conda_installed):
        return channels, specs, installed, []  # nothing conda to solve for (compiled only)
    describe = {d.name: located(spec.path, d.line) for d in spec.dependencies}
    records = conda.solve(
        specs + extra,
        channels,
        subdir=conda.host_subdir(),
        locked=[] if opts.update else conda_installed,
        offline=opts.offline,
        describe=describe,
        constraints=constraints,
    )
    if mpi is not None:
        from pmpm.mpi import check_conda_mpi

        check_conda_mpi(records, mpi)
    return channels, specs, installed, records


def _dry_run(spec, layout, opts: Options, say: Say) -> int:
    from pmpm import conda

    compiler = _compiler(spec, layout, opts, say)
    _, _, installed, records = _solve(spec, layout, opts, compiler, say)
    changes = conda.diff([r for r in installed if not conda.is_compiled(r)], records)
    where = layout.conda or layout.root
    if changes:
        say(f"dry run: would change {where} as follows (nothing was changed):")
        for change in changes:
            say(str(change))
    elif layout.conda is not None:
        say(f"dry run: {where} already has these {len(records)} conda packages; nothing to change")
    if compiler:
        say("compiled packages" + (f" (into {layout.compile}):" if layout.kind == "system" else ":"))
        for step in compiler.plan(_compiled_side(layout, installed)):
            say(f"  {step.explain()}")
    return 0


def _compiled_side(layout, installed: list) -> list:
    """The records of the compiled stack (the same list when it shares the conda prefix)."""
    if layout.compile == layout.conda:
        return installed
    from pmpm import conda

    return conda.installed_records(layout.compile)


def _apply(spec, layout, opts: Options, want: state.State, say: Say) -> None:
    from pmpm import conda, history, variables
    from pmpm.channels import channel_alias
    from pmpm.pip_stage import install_pip

    compiler = _compiler(spec, layout, opts, say)
    if opts.backend != "rattler":
        channels = _run_backend(spec, layout, opts, compiler, say)
        _finish(layout, want, channels, compiler, spec=spec, say=say, env_file=opts.file)
        say(f"{layout.root} is ready ({opts.backend})")
        return

    channels, specs, installed, records = _solve(spec, layout, opts, compiler, say)
    compiled_side = _compiled_side(layout, installed)
    compiled = {r.name.normalized for r in compiled_side if conda.is_compiled(r)}
    changes = conda.diff([r for r in installed if not conda.is_compiled(r)], records)
    damaged = conda.damaged_packages(layout.conda, installed) if layout.conda is not None else set()
    vars_prefix = layout.conda or layout.compile
    vars_changed = variables.read(vars_prefix) != spec.variables
    steps = compiler.plan(compiled_side) if compiler and not changes else None
    wanted = {s.name for s in steps} if steps is not None else None
    idle = steps is not None and all(s.decision == "up to date" for s in steps)
    respec = history.specs_changed(spec, layout, specs)
    if (
        not (changes or damaged or vars_changed or spec.pip or respec)
        and (compiler is None or idle)
        and (compiled <= (wanted or set()))
    ):
        _finish(layout, want, channels, compiler, spec=spec, say=say, env_file=opts.file)
        say(f"{layout.root} already has what {opts.file} asks for ({len(records) + len(compiled)} packages)")
        return

    keep = {r.url for r in installed if r.name.normalized not in damaged}
    conda.verify_local_sha256([r for r in records if r.url not in keep])
    for change in changes:
        say(str(change))
    if damaged:
        say("relinking damaged packages: " + ", ".join(sorted(damaged)))
    try:
        for stack in layout.prefixes:  # in the try: when one cannot be written, all are dropped
            journal.begin(stack)
        if changes or damaged or (respec and layout.conda is not None):  # (records keep their files)
            ignored = compiled if layout.conda == layout.compile else set()
            conda.install(
                records,
                layout.conda,
                installed=installed,
                requested=specs,
                solved=True,
                reinstall=damaged,
                ignored=ignored,
            )
        variables.write(vars_prefix, spec.variables)
        if spec.pip:
            _require_conda_stack(spec, layout, "pip: entries")
            install_pip(spec, layout.conda, offline=opts.offline)
        _compile(compiler, layout.compile, steps, say, compiled)
        before = {layout.compile: compiled_side, **({layout.conda: installed} if layout.conda else {})}
        history.write_run(spec, layout, specs, before, alias=channel_alias(opts.channel_alias))
    except BaseException:
        for stack in layout.prefixes:
            try:
                journal.restore(stack)
            except PmpmError as exc:
                say(f"could not put {stack} back as it was: {exc}")
        raise
    for stack in layout.prefixes:
        journal.commit(stack)
    _finish(layout, want, channels, compiler, spec=spec, say=say, env_file=opts.file)
    built = len(compiler.planned) if compiler else 0
    say(f"{layout.root} is ready: {len(records)} conda packages, {built} compiled")


def _require_conda_stack(spec, layout, what: str) -> None:
    if layout.conda is None:
        from pmpm.errors import located

        raise PmpmError(
            f"{what} need the conda stack's python, but `_pmpm: {{conda: false}}` leaves it out",
            where=located(spec.path, spec.pip_line),
            hint="remove `conda: false`, or install these with the site's pip",
        )


def _compile(compiler, prefix: Path, steps, say: Say, compiled: set[str] | None = None) -> None:
    """Build what changed, then drop compiled packages the env file no longer lists.

    ``compiled`` names the compiled packages the prefix held before (None: unknown, read them);
    with none before and none wanted there is nothing to read back.
    """
    from pmpm import conda

    if compiler is not None:
        if steps is None:
            compiler.forget_environment()
            steps = compiler.plan(conda.installed_records(prefix))
        compiler.run(steps)
    wanted = {s.name for s in steps} if compiler is not None else set()
    if compiled is not None and compiled <= wanted:
        return
    from pmpm.compile_stage import remove_compiled

    removed = remove_compiled(prefix, conda.installed_records(prefix), wanted)
    if removed:
        say("removed compiled packages no longer listed: " + ", ".join(removed))


def _run_backend(spec, layout, opts: Options, compiler, say: Say):
    from pmpm import backends, conda, history
    from pmpm.channels import channel_alias
    from pmpm.pip_stage import install_pip

    backend = opts.backend or "rattler"
    channels, specs = _channels_and_specs(spec, opts)
    extra = compiler.conda_specs() if compiler else []
    backends.executable(backend)
    _require_conda_stack(spec, layout, f"`--backend {backend}`")
    try:
        for stack in layout.prefixes:
            journal.begin(stack)
        backends.install_with(backend, spec, layout.conda, channels, specs + extra, offline=opts.offline)
        install_pip(spec, layout.conda, offline=opts.offline)
        before = {stack: conda.installed_records(stack) for stack in layout.prefixes}
        _compile(compiler, layout.compile, None, say)
        # the tool wrote its own entry; this one adds the compiled packages
        history.write_run(spec, layout, specs, before, alias=channel_alias(opts.channel_alias))
    except BaseException:
        for stack in layout.prefixes:
            journal.restore(stack)
        raise
    for stack in layout.prefixes:
        journal.commit(stack)
    return channels


def _publish(spec, layout, say: Say) -> None:
    """Make the environment reachable without pmpm: modulefiles and a Jupyter kernel, as the env
    file asks. After the record, since the modules name the environment id of the new record."""
    from pmpm import envinfo

    envinfo.save(layout, envinfo.EnvInfo.from_spec(spec))
    if spec.pmpm.modules:
        from pmpm import modules

        base = spec.path.parent
        config = {
            key: str(base / Path(value).expanduser()) if key in modules.KINDS else value
            for key, value in spec.pmpm.modules.items()
        }
        try:
            modules.refresh(layout, config, say)
        except PmpmError as exc:
            exc.hint = (exc.hint + "; " if exc.hint else "") + (
                f"the environment itself is ready: write the modules with `pmpm module {layout.root}`"
            )
            raise
    if spec.pmpm.jupyter_kernel:
        from pmpm import jupyter

        jupyter.register(layout, say)


def _finish(
    layout, want: state.State, channels, compiler=None, *, spec, say: Say, env_file: Path | None = None
) -> None:
    """Record what made this result, publish it, then save what makes an identical next run a
    no-op. In this order: a run that stops (or fails writing a module) before the last step
    leaves no no-op state, so the next run writes the record and the modules again.
    """
    from pmpm import layout as layouts
    from pmpm.conda import host_subdir
    from pmpm.record import write_record

    layouts.write(layout)
    record = write_record(layout, env_file)
    say(f"environment id: {record.environment_id}")
    _publish(spec, layout, say)

    watched = []
    for channel in channels:
        if channel.local_path is not None:
            for subdir in (host_subdir(), "noarch"):
                watched += [channel.local_path / subdir / "repodata.json"]
    if compiler is not None:
        watched += compiler.watched_files()
        want.trees = compiler.tree_stamps
    state.watch(want, watched)
    want.records = state.records_digest(*layout.prefixes)
    want.save(layout.compile)
