"""Stage 2, the conda stage: solve the conda stack (with the recipes' conda specs), say what
changes, and apply it under the run's transaction -- with py-rattler, or with an external
conda/mamba/micromamba (``--backend``).

The build stage (:mod:`pmpm.pipeline.builds`) is imported only by a run that has packages to
build or compiled packages to remove: it brings the recipe, source and packaging machinery,
several times the import cost of everything a conda-only install needs (measured with
``python -X importtime``; ``benchmarks/conda_stage.py`` holds a conda-only create to a ratio
of bare py-rattler).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pmpm.build.result import BuildResult
from pmpm.conda import backends, explicit, history, variables
from pmpm.conda import engine as conda
from pmpm.conda.channels import channel_alias
from pmpm.conda.pip_stage import install_pip
from pmpm.errors import PmpmError, located
from pmpm.pipeline.prepare import require_conda_stack
from pmpm.pipeline.types import Changes, Prepared, Say, Solved

if TYPE_CHECKING:
    from pmpm.build.plan import BuildPlan
    from pmpm.env.layout import Layout
    from pmpm.host.mpi.choice import MPI
    from pmpm.spec.model import EnvSpec


def solve(prepared: Prepared, say: Say) -> Solved:
    """Solve the conda stack: the env file's specs and the recipes' conda specs, locked to what
    is installed unless ``--update``."""
    loaded = prepared.loaded
    spec, layout, opts = loaded.spec, loaded.layout, loaded.opts
    if layout.conda is None:
        if spec.dependencies:
            say("note: `_pmpm: {conda: false}`: the env file's conda dependencies are not installed")
        return Solved(prepared, installed=[], records=[], compiled_side=compiled_side(layout, []))
    if spec.explicit:  # an @EXPLICIT list: its package files are the answer, nothing to solve
        _require_host_platform(spec)
        installed = conda.installed_records(layout.conda)
        listed = explicit.records(spec.path, offline=opts.offline)
        return Solved(
            prepared, installed=installed, records=listed, compiled_side=compiled_side(layout, installed)
        )
    mpi = _external_mpi(prepared)
    constraints: list[str] = []
    if mpi is not None:  # (pmpm.host.mpi.choice is imported only then: it is not small)
        from pmpm.host.mpi.choice import check_conda_mpi, conda_constraints

        constraints = conda_constraints(mpi)
        if constraints:
            say(
                f"MPI: conda packages that need one get conda-forge's external build "
                f"({', '.join(constraints)}) for the system's {mpi.vendor} {mpi.version}"
            )
    installed = conda.installed_records(layout.conda)
    conda_installed = [r for r in installed if not conda.is_compiled(r)]
    records: list[Any] = []
    if prepared.specs or prepared.recipe_specs or conda_installed:  # else compiled only
        describe = {d.name: located(spec.path, d.line) for d in spec.dependencies}
        records = conda.solve(
            [*prepared.specs, *prepared.recipe_specs],
            prepared.channels,
            subdir=conda.host_subdir(),
            locked=[] if opts.update else conda_installed,
            offline=opts.offline,
            describe=describe,
            constraints=constraints,
        )
        if mpi is not None:
            check_conda_mpi(records, mpi)
    return Solved(
        prepared, installed=installed, records=records, compiled_side=compiled_side(layout, installed)
    )


def _require_host_platform(spec: EnvSpec) -> None:
    """An explicit list names the files of one platform (its ``# platform:`` line)."""
    host = conda.host_subdir()
    foreign = [p for p in spec.platforms if p not in (host, "noarch")]
    if foreign:
        raise PmpmError(
            f"the explicit package list is for {foreign[0]}, this machine is {host}",
            where=str(spec.path),
            hint=f"write the list on (or for) a {host} machine: conda list --explicit --md5",
        )


def _external_mpi(prepared: Prepared) -> MPI | None:
    """The external MPI the conda stack must not duplicate, or None.

    Only decided before the solve when it does not depend on it: an explicit external setting,
    or system_install's automatic choice (the host's MPI); in conda_install mode an automatic
    choice prefers a conda MPI, so the solve is not constrained.
    """
    spec, layout = prepared.loaded.spec, prepared.loaded.layout
    setting, system, compiler = spec.pmpm.mpi, layout.kind == "system", prepared.compiler
    if setting is None and not system:  # external_before_solve's first rule, without its module
        return None
    from pmpm.host.mpi.choice import decide, external_before_solve

    if compiler is not None:  # the run's decision, kept by the compile stage for the builds
        return external_before_solve(setting, system=system, decide_now=compiler.choose_mpi)
    return external_before_solve(
        setting,
        system=system,
        decide_now=lambda: decide(setting, system=system, base=layout.conda, prefix=layout.compile),
    )


def compiled_side(layout: Layout, installed: list[Any]) -> list[Any]:
    """The records of the compiled stack (the same list when it shares the conda prefix)."""
    if layout.compile == layout.conda:
        return installed
    return conda.installed_records(layout.compile)


def changes(solved: Solved) -> Changes:
    """What the run must change; the build plan is made now only when the conda stack stays."""
    prepared = solved.prepared
    spec, layout = prepared.loaded.spec, prepared.loaded.layout
    compiled = frozenset(r.name.normalized for r in solved.compiled_side if conda.is_compiled(r))
    diff = conda.diff([r for r in solved.installed if not conda.is_compiled(r)], solved.records)
    damaged = conda.damaged_packages(layout.conda, solved.installed) if layout.conda is not None else set()
    vars_prefix = layout.conda or layout.compile
    compiler = prepared.compiler
    return Changes(
        conda=diff,
        damaged=frozenset(damaged),
        variables=variables.read(vars_prefix) != spec.variables,
        respec=history.specs_changed(spec, layout, prepared.specs),
        compiled=compiled,
        plan=compiler.plan(solved.compiled_side) if compiler and not diff else None,
    )


def apply(solved: Solved, todo: Changes, say: Say) -> BuildResult:
    """Change the stacks (inside the run's journal, ``Transaction.changing``): conda packages,
    variables, pip, the builds, and conda's history; returns what the builds did."""
    prepared = solved.prepared
    spec, layout, opts = prepared.loaded.spec, prepared.loaded.layout, prepared.loaded.opts
    keep = {r.url for r in solved.installed if r.name.normalized not in todo.damaged}
    conda.verify_local_sha256([r for r in solved.records if r.url not in keep])
    for change in todo.conda:
        say(str(change))
    if todo.damaged:
        say("relinking damaged packages: " + ", ".join(sorted(todo.damaged)))
    # a respec alone rewrites the conda records' requested specs (their files stay): with no
    # conda packages there is none to rewrite, and the compiled side's specs are in the history
    respec = todo.respec and layout.conda is not None and bool(solved.records)
    linked = bool(todo.conda or todo.damaged or respec)
    if linked:
        assert layout.conda is not None  # a solve without a conda stack changes nothing
        conda.install(
            solved.records,
            layout.conda,
            installed=solved.installed,
            requested=prepared.specs,
            solved=True,
            reinstall=set(todo.damaged),
            ignored=set(todo.compiled) if layout.conda == layout.compile else set(),
        )
    variables.write(layout.conda or layout.compile, spec.variables)
    if spec.pip:
        require_conda_stack(spec, layout, "pip: entries")
        assert layout.conda is not None
        install_pip(spec, layout.conda, offline=opts.offline)
    result = _build(prepared, todo.plan, say, set(todo.compiled))
    before = {
        layout.compile: solved.compiled_side,
        **({layout.conda: solved.installed} if layout.conda else {}),
    }
    after = None
    if not _builds_ran(prepared, set(todo.compiled)):  # the stacks hold what this stage made them
        after = {**before, **({layout.conda: solved.records} if layout.conda and linked else {})}
    alias = channel_alias(opts.channel_alias)
    history.write_run(spec, layout, prepared.specs, before, alias=alias, after=after)
    return result


def _builds_ran(prepared: Prepared, compiled: set[str] | None) -> bool:
    """Does the build stage have anything to do: packages to build, or compiled packages the
    prefix held before (``compiled``; None: unknown) that it may have to remove?"""
    return prepared.compiler is not None or compiled is None or bool(compiled)


def _build(prepared: Prepared, plan: BuildPlan | None, say: Say, compiled: set[str] | None) -> BuildResult:
    """The build stage (:func:`pmpm.pipeline.builds.build`), imported only when there is
    something to build or compiled packages to drop (``compiled``: those the prefix held
    before; None: unknown, the build stage reads them)."""
    if not _builds_ran(prepared, compiled):
        return BuildResult(plan=None)
    from pmpm.pipeline.builds import build

    loaded = prepared.loaded
    return build(prepared.compiler, loaded.layout.compile, plan, say, compiled, slurm=loaded.opts.slurm)


def apply_backend(prepared: Prepared, say: Say) -> BuildResult:
    """The conda stage by an external installer (it solves), then the builds (inside the run's
    journal); returns what the builds did."""
    spec, layout, opts = prepared.loaded.spec, prepared.loaded.layout, prepared.loaded.opts
    backend = opts.backend or "rattler"
    if spec.explicit:
        raise PmpmError(
            f"`--backend {backend}` does not install explicit package lists (@EXPLICIT)",
            where=str(spec.path),
            hint="leave out --backend: pmpm's own installer installs the list's files",
        )
    backends.executable(backend)
    require_conda_stack(spec, layout, f"`--backend {backend}`")
    assert layout.conda is not None
    specs = [*prepared.specs, *prepared.recipe_specs]
    backends.install_with(backend, spec, layout.conda, prepared.channels, specs, offline=opts.offline)
    install_pip(spec, layout.conda, offline=opts.offline)
    before = {stack: conda.installed_records(stack) for stack in layout.prefixes}
    result = _build(prepared, None, say, None)
    # the tool wrote its own entry; this one adds the compiled packages
    history.write_run(spec, layout, prepared.specs, before, alias=channel_alias(opts.channel_alias))
    return result
