"""Stage 1, prepare: read the env file, decide the installer and the stacks, find the recipes
and the conda specs they add to the solve."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pmpm.commands.conda_install import layout_fingerprint
from pmpm.conda.channels import resolve_channels, spec_for_solver
from pmpm.env import state
from pmpm.env.layout import Layout
from pmpm.errors import PmpmError, located
from pmpm.pipeline.types import Loaded, Prepared, Request, Say
from pmpm.spec.envfile import load_env_file
from pmpm.spec.model import EnvSpec
from pmpm.spec.targets import targets_for

if TYPE_CHECKING:
    from pmpm.build.compile_stage import Compiler


def load(request: Request, say: Say) -> Loaded:
    """The env file parsed and checked; the installer and the stacks decided from it."""
    opts = request.opts
    spec = load_env_file(opts.file)
    for note in spec.pmpm.notes:
        say(f"note: {note}")
    opts = replace(opts, backend=_choose_backend(opts.backend, spec, say))
    layout, want = request.layout, request.want
    if request.choose_layout is not None:
        layout = request.choose_layout(spec)
        last = layout_fingerprint(request.layout)  # the layout as last written: replaced
        kept = {k: v for k, v in want.options.items() if k not in last}
        want = replace(want, options={**kept, **layout_fingerprint(layout)})
    for stack in layout.prefixes:
        refuse_foreign_folder(stack)
    return Loaded(spec=spec, layout=layout, opts=opts, want=want)


def prepare(loaded: Loaded, say: Say, target: str | None = None) -> Prepared:
    """The compiled stage's recipes, and what the conda solve gets: the resolved channels, the
    env file's specs and the conda packages the recipes build against (none without a conda
    stack, which the solve then leaves out). ``target``: the CPU target of ``loaded.layout``'s
    compiled stack (one of several, :mod:`pmpm.pipeline.targets`); None: the env file's."""
    spec, layout, opts = loaded.spec, loaded.layout, loaded.opts
    compiler = compiler_for(loaded, say, target)
    external = opts.backend != "rattler" and not opts.dry_run  # it needs them even without a stack
    if layout.conda is None and not external:
        return Prepared(loaded, compiler, channels=[], specs=[], recipe_specs=())

    channels = resolve_channels(spec, alias_override=opts.channel_alias)
    specs = [
        spec_for_solver(d, alias_override=opts.channel_alias, base_dir=spec.path.parent)
        for d in spec.dependencies
    ]
    recipe_specs = tuple(compiler.conda_specs()) if compiler else ()
    return Prepared(loaded, compiler, channels=channels, specs=specs, recipe_specs=recipe_specs)


def compiler_for(loaded: Loaded, say: Say, target: str | None = None) -> Compiler | None:
    """The compile stage's services for ``loaded.layout``'s compiled stack and ``target``
    (None: the env file's), or None when the env file lists no packages to build."""
    spec, layout, opts = loaded.spec, loaded.layout, loaded.opts
    if not spec.pmpm.packages:
        return None
    from pmpm.build.compile_stage import Compiler  # the build stage: a conda-only run never loads it

    if target is None:  # `targets: [one]` (or `--targets one`) is that one `target`; with
        chosen = targets_for(spec.pmpm, opts.targets)  # a stack each, `compile` is the first's
        target = chosen[0] if len(chosen) == 1 else (layout.targets or (None,))[0]
    return Compiler(
        spec,
        layout.compile,
        jobs=opts.jobs,
        offline=opts.offline,
        say=say,
        keep_build=opts.keep_build,
        # (conda_install: the compiled stack is the base, also one target's stack of several,
        # which holds the conda packages its recipes need: pmpm.pipeline.targets)
        base=layout.conda,
        system=layout.kind == "system",
        fresh=opts.fresh,
        rebuild=frozenset(opts.rebuild),
        target=target,
    )


def _choose_backend(given: str | None, spec: EnvSpec, say: Say) -> str:
    """The installer to use: ``--backend`` if given, else the env file's ``_pmpm.backend``
    (or the original pmpm's ``conda: mamba``), else the embedded one; says which when it is not
    simply the default."""
    written = spec.pmpm.backend
    chosen = given or written or "rattler"
    if given and written and given != written:
        say(f"installer: {chosen} (--backend overrides `_pmpm.backend: {written}` of {spec.path})")
    elif not given and written:
        say(f"installer: {chosen} (`_pmpm.backend` of {spec.path})")
    return chosen


def up_to_date(loaded: Loaded) -> bool:
    """The no-op check again, under the prefix lock (a run waited on may have done the work)."""
    layout = loaded.layout
    return not loaded.opts.forced and state.up_to_date(layout.compile, loaded.want, layout.prefixes)


def refuse_foreign_folder(prefix: Path) -> None:
    """Like conda, never take over a non-empty folder that is not an environment."""
    if prefix.is_dir() and not (prefix / "conda-meta").is_dir() and any(_foreign(prefix)):
        raise PmpmError(
            f"{prefix} exists, is not empty and is not a conda environment (no conda-meta folder)",
            hint="choose a new or empty folder as PREFIX",
        )
    if prefix.exists() and not prefix.is_dir():
        raise PmpmError(f"{prefix} exists and is not a folder", hint="choose another PREFIX")


def _foreign(folder: Path) -> list[Path]:
    """What a folder holds besides stacks of its own (the per-target stacks ``compile/T`` of a
    system_install that had several targets and now builds one, into ``compile``)."""
    return [p for p in folder.iterdir() if not (p / "conda-meta").is_dir()]


def require_conda_stack(spec: EnvSpec, layout: Layout, what: str) -> None:
    if layout.conda is None:
        raise PmpmError(
            f"{what} need the conda stack's python, but `_pmpm: {{conda: false}}` leaves it out",
            where=located(spec.path, spec.pip_line),
            hint="remove `conda: false`, or install these with the site's pip",
        )
