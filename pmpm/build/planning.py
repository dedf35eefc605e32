"""Planning the compile stage: for each package of ``_pmpm.packages``, in dependency order, its
rendered recipe, its source, everything its build depends on (a ``BuildInputs``, whose digest is
the build key) and what the run does with it (:func:`pmpm.build.plan.decide`), against what the
stacks hold -- returned as one frozen :class:`pmpm.build.plan.BuildPlan`.

The services it uses (recipes, sources, host detection, tools, binary cache) are the run's
:class:`pmpm.build.compile_stage.Compiler`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm.build import reproducible
from pmpm.build.environment import build_env
from pmpm.build.inputs import BuildInputs, builder_identity, distribution_files, distribution_of
from pmpm.build.plan import BuildPlan, Step, build_string, decide, digest, order, stored_inputs
from pmpm.build.recipe import Recipe
from pmpm.builders import BuildContext, Flags, registry
from pmpm.conda import engine as conda
from pmpm.env.state import tree_stamp
from pmpm.errors import PmpmError
from pmpm.sources.spec import SourceSpec
from pmpm.sources.tree import changed_files, stat_cache_for

if TYPE_CHECKING:
    from pmpm.build.compile_stage import Compiler, Rendered
    from pmpm.host.detect import HostProfile


def plan(compiler: Compiler, installed: list[Any]) -> BuildPlan:
    """The plan against the compiled stack's ``installed`` records: every package's inputs,
    key and decision, in dependency order, with the compiler's services (hosts, tools, sources,
    binary cache) for the stacks as they are now."""
    rendered: dict[str, Rendered] = {}

    def render(name: str) -> Rendered:
        if name not in rendered:
            rendered[name] = compiler.render(name)
        return rendered[name]

    names = order(compiler.requests(), compiler.book, lambda n: render(n).recipe.requires_recipes)
    by_name = {r.name.normalized: r for r in installed}
    conda_side = by_name
    if compiler.system:
        stack = conda.installed_records(compiler.base) if compiler.base is not None else []
        conda_side = {r.name.normalized: r for r in stack}
    steps: dict[str, Step] = {}
    trees: dict[str, str] = {}
    for name in names:
        r = render(name)
        source = _source(compiler, name, r)
        if source.kind == "path" and source.path is not None:
            # stamped before it is read: an edit made while this run builds is seen next time
            trees[str(source.path)] = tree_stamp(source.path)
        fetched = compiler.sources.fetch(
            source, offline=compiler.offline, python=_text(compiler.python_exe())
        )
        inputs = _inputs(compiler, name, r, source, fetched.identity, conda_side, steps)
        current = by_name.get(name)
        installed_build = str(current.build) if current is not None else None
        forced = "--fresh" if compiler.fresh else "--rebuild" if name in compiler.rebuild else None
        stale = installed_build != build_string(inputs)
        hit = None
        if not forced and r.place is not None and stale:
            hit = compiler.cache.find(f"{name}-{r.recipe.version}-{build_string(inputs)}.conda")
        in_prefix = reproducible.why_in_prefix(compiler.prefix, r.place, hit) if stale or forced else None
        if in_prefix is not None:  # a PREFIX too long for the padded build prefix (and its cache)
            rendered[name] = r = compiler.render(name, place=None)
            inputs = _inputs(compiler, name, r, source, fetched.identity, conda_side, steps)
            stale, hit = installed_build != build_string(inputs), None
        stored, unreadable = None, False
        if current is not None and not forced and stale and hit is None:
            try:
                stored = stored_inputs(compiler.prefix, name)
            except PmpmError:  # a newer pmpm's: rebuilt by this one
                unreadable = True
        decision, reasons = decide(
            inputs, installed_build=installed_build, stored=stored, forced=forced, cached=hit
        )
        if decision == "rebuild" and unreadable:
            reasons = ("pmpm's build format changed",)
        if in_prefix is not None and decision != "up to date":
            reasons = (*reasons, in_prefix)
        if decision == "rebuild" and stored and source.kind == "path" and stored.source != inputs.source:
            said = _source_change(compiler, source, stored.source, inputs.source)
            reasons = tuple(said if x.startswith("source changed") else x for x in reasons)
        steps[name] = Step(
            name,
            r.recipe,
            source,
            fetched.identity,
            r.target,
            inputs,
            r.host,
            r.flags,
            decision=decision,
            reasons=reasons,
            where=r.where,
            fetched=fetched,
            place=r.place,
            cached=hit if decision == "from cache" else None,
        )
    watched = watched_files(compiler, compiler.hosts_found())
    return BuildPlan(tuple(steps.values()), trees=trees, watched=tuple(watched))


def _source(compiler: Compiler, name: str, r: Rendered) -> SourceSpec:
    """The package's source as the recipe (or the env file's request) gives it."""
    request = compiler.requests().get(name)
    if request is not None and {"path", "git", "url", "pypi"} & request.options.keys():
        # the env file gave the source: its relative folders and its errors are the file's
        base, said = compiler.spec.path.parent, r.where or str(compiler.spec.path)
    else:
        plugin = r.recipe.origin.startswith("plugin")
        base = compiler.spec.path.parent if plugin else Path(r.recipe.origin).parent
        said = f"{r.recipe.origin} (source)"
    return SourceSpec.from_dict(r.recipe.source, where=said, base_dir=base)


def _inputs(
    compiler: Compiler,
    name: str,
    r: Rendered,
    source: SourceSpec,
    identity: str,
    conda_side: dict[str, Any],
    planned: dict[str, Step],
) -> BuildInputs:
    """Everything the build of ``name`` depends on, with the build prefix as a token."""
    conda_deps = {}
    for requirement in r.recipe.requires_conda:
        dep = requirement.split()[0].split("=")[0].split("<")[0].split(">")[0]
        record = conda_side.get(dep)
        if record is not None:
            conda_deps[dep] = f"{record.version}-{record.build}"
        else:
            conda_deps[dep] = "from the host" if compiler.base is None else "not installed yet"
    host, place = r.host, r.place
    raw = BuildInputs(
        recipe=digest({"recipe": compiler.neutral(r.recipe.keyed(), place)}),
        recipe_plugin=_recipe_plugin(compiler, name),
        builder=_builder_identity(compiler, r.recipe, source, host, r.flags, place),
        source=identity,
        flags=asdict(r.flags),
        compilers={
            k: f"{c.vendor} {c.version} {c.path} ({c.version_string})"
            for k, c in sorted(host.compilers.items())
        },
        mpi=r.mpi,
        python=r.python,
        target=host.target,
        options=r.options,
        prefix="relocatable" if place is not None else str(compiler.prefix),
        recipes={dep: planned[dep].key for dep in r.recipe.requires_recipes},
        conda=conda_deps,
    )
    return BuildInputs(**compiler.neutral(raw.as_dict(), place))


def _recipe_plugin(compiler: Compiler, name: str) -> str | None:
    """The distribution (and version) of the plugin a recipe comes from: an upgrade rebuilds."""
    plugin = compiler.book.find(name).plugin
    return distribution_of(plugin) if plugin is not None else None


def _builder_identity(
    compiler: Compiler,
    recipe: Recipe,
    source: SourceSpec,
    host: HostProfile,
    flags: Flags,
    place: Path | None,
) -> dict[str, str]:
    """The builder's part of the key (pmpm.build.inputs.builder_identity), its commands
    given for this build's prefix, flags and compilers with placeholder folders."""
    ctx = BuildContext(
        name=recipe.name,
        version=recipe.version,
        source_dir=Path("/${src}"),
        build_dir=Path("/${build}"),
        stage_dir=Path("/${stage}"),
        prefix=place or compiler.prefix,
        jobs=1,  # the share of --jobs a build gets is not an input: it changes no bits
        flags=flags,
        env=build_env(compiler, host, flags, recipe.env, jobs=1, where=place),
        args=tuple(recipe.args),
        script=recipe.script,
    )
    tree = source.path if source.kind == "path" else None
    return builder_identity(recipe, tree, ctx, lambda value: compiler.neutral(value, place))


def _source_change(compiler: Compiler, source: SourceSpec, old: str, new: str) -> str:
    """ "source changed: a.c, b.h (+3 more)" when the local tree's stat cache remembers both."""
    assert source.path is not None  # a local tree's
    files = changed_files(stat_cache_for(compiler.sources.root / "tree-hashes", source.path), old, new)
    if not files:
        return f"source changed ({old} -> {new})"
    shown = ", ".join(files[:5]) + (f" (+{len(files) - 5} more)" if len(files) > 5 else "")
    return f"source changed: {shown}"


def watched_files(compiler: Compiler, hosts: list[Any]) -> list[Path]:
    """Files whose change must end the no-op shortcut: recipe files, the compilers of
    ``hosts`` (those the plan found), the plugins."""
    files = [Path(source.origin) for source in compiler.book.sources().values() if source.text is not None]
    files += [Path(c.path) for host in hosts for c in host.compilers.values()]
    # plugins: an upgrade replaces their metadata, an edit changes their module
    plugins = [s.plugin for s in compiler.book.sources().values() if s.plugin is not None]
    files += [Path(f) for ep in plugins for f in distribution_files(ep)]
    files += [Path(f) for f in registry.watched_files()]
    return files


def _text(path: Path | None) -> str | None:
    return str(path) if path is not None else None
