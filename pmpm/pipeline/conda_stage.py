"""Stage 2, the conda stage: solve the conda stack (with the recipes' conda specs), say what
changes, and apply it under the run's transaction -- with py-rattler, or with an external
conda/mamba/micromamba (``--backend``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pmpm.conda import backends, history, variables
from pmpm.conda import engine as conda
from pmpm.conda.channels import channel_alias
from pmpm.conda.pip_stage import install_pip
from pmpm.errors import located
from pmpm.host.mpi.choice import check_conda_mpi, conda_constraints, decide, external_before_solve
from pmpm.pipeline.builds import build
from pmpm.pipeline.prepare import require_conda_stack
from pmpm.pipeline.types import Changes, Prepared, Say, Solved

if TYPE_CHECKING:
    from pmpm.env.layout import Layout
    from pmpm.host.mpi.choice import MPI


def solve(prepared: Prepared, say: Say) -> Solved:
    """Solve the conda stack: the env file's specs and the recipes' conda specs, locked to what
    is installed unless ``--update``."""
    loaded = prepared.loaded
    spec, layout, opts = loaded.spec, loaded.layout, loaded.opts
    if layout.conda is None:
        if spec.dependencies:
            say("note: `_pmpm: {conda: false}`: the env file's conda dependencies are not installed")
        return Solved(prepared, installed=[], records=[], compiled_side=compiled_side(layout, []))
    mpi = _external_mpi(prepared)
    constraints: list[str] = []
    if mpi is not None:  # (pmpm.host.mpi.choice is imported only then: it is not small)
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


def _external_mpi(prepared: Prepared) -> MPI | None:
    """The external MPI the conda stack must not duplicate, or None.

    Only decided before the solve when it does not depend on it: an explicit external setting,
    or system_install's automatic choice (the host's MPI); in conda_install mode an automatic
    choice prefers a conda MPI, so the solve is not constrained.
    """
    spec, layout = prepared.loaded.spec, prepared.loaded.layout
    setting, system, compiler = spec.pmpm.mpi, layout.kind == "system", prepared.compiler
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
        steps=compiler.plan(solved.compiled_side) if compiler and not diff else None,
    )


def apply(solved: Solved, todo: Changes, say: Say) -> None:
    """Change the stacks (inside the run's journal, ``Transaction.changing``): conda packages,
    variables, pip, the builds, and conda's history."""
    prepared = solved.prepared
    spec, layout, opts = prepared.loaded.spec, prepared.loaded.layout, prepared.loaded.opts
    keep = {r.url for r in solved.installed if r.name.normalized not in todo.damaged}
    conda.verify_local_sha256([r for r in solved.records if r.url not in keep])
    for change in todo.conda:
        say(str(change))
    if todo.damaged:
        say("relinking damaged packages: " + ", ".join(sorted(todo.damaged)))
    if todo.conda or todo.damaged or (todo.respec and layout.conda is not None):  # (records keep files)
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
    build(prepared.compiler, layout.compile, todo.steps, say, set(todo.compiled))
    before = {
        layout.compile: solved.compiled_side,
        **({layout.conda: solved.installed} if layout.conda else {}),
    }
    history.write_run(spec, layout, prepared.specs, before, alias=channel_alias(opts.channel_alias))


def apply_backend(prepared: Prepared, say: Say) -> None:
    """The conda stage by an external installer (it solves), then the builds (inside the run's
    journal)."""
    spec, layout, opts = prepared.loaded.spec, prepared.loaded.layout, prepared.loaded.opts
    backend = opts.backend or "rattler"
    backends.executable(backend)
    require_conda_stack(spec, layout, f"`--backend {backend}`")
    assert layout.conda is not None
    specs = [*prepared.specs, *prepared.recipe_specs]
    backends.install_with(backend, spec, layout.conda, prepared.channels, specs, offline=opts.offline)
    install_pip(spec, layout.conda, offline=opts.offline)
    before = {stack: conda.installed_records(stack) for stack in layout.prefixes}
    build(prepared.compiler, layout.compile, None, say)
    # the tool wrote its own entry; this one adds the compiled packages
    history.write_run(spec, layout, prepared.specs, before, alias=channel_alias(opts.channel_alias))
