"""The compile stage: plan the ``_pmpm.packages`` builds, run them, install the results.

Each package is built against what PREFIX already holds (conda packages, then the recipes it
requires, installed one by one in dependency order), packed as a conda package into pmpm's build
channel and installed with the conda stage's installer, so ``conda-meta`` has a record for it.
The caller holds the prefix lock and the journal: a failure anywhere puts PREFIX back as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm import paths
from pmpm.build.binary_cache import BinaryCache
from pmpm.build.environment import ToolContext, build_env, mpi_values, python_values
from pmpm.build.inputs import BuildInputs, builder_identity, distribution_files, distribution_of
from pmpm.build.plan import Step, digest, order, recipe_for, stored_inputs
from pmpm.build.recipe import RecipeBook, unknown_recipes
from pmpm.builders import BuildContext, Flags, registry
from pmpm.conda import engine as conda
from pmpm.env.state import tree_stamp
from pmpm.errors import combined, located
from pmpm.host.mpi.choice import decide

if TYPE_CHECKING:
    from pmpm.host.mpi.choice import MpiChoice

Say = Callable[[str], None]
#: what a local tree's copy leaves out (VCS data, the user's own build output), as its hash does
_untracked = paths.untracked


#: length of the padded build prefix: installs relocate into any PREFIX up to this long
BUILD_PREFIX_LENGTH = 240

host_path = paths.host_search_path  # PATH without the environment's own folders


@dataclass
class Compiler:
    """What the stage needs for one run; built once per conda_install or system_install.

    ``prefix`` is where compiled packages are installed; ``base`` is the conda stack they build
    against (conda packages, python). In conda_install mode the two are one prefix and conda's
    compilers in it come first; in system_install mode (``system=True``) builds use the host's
    compilers and MPI and ``base`` is a second prefix, or None when there is no conda stack.
    """

    spec: Any
    prefix: Path
    jobs: int
    offline: bool
    say: Say
    keep_build: bool = False
    base: Path | None = None
    system: bool = False
    fresh: bool = False  # clean builds: kept build folders of local trees are started again
    rebuild: frozenset[str] = frozenset()  # packages built again even when up to date

    def __post_init__(self) -> None:
        from pmpm.sources.cache import SourceCache

        if not self.system:
            self.base = self.prefix
        self.jobs = self.jobs or os.cpu_count() or 1
        self.book = RecipeBook(list(self.spec.pmpm.recipes))
        self.sources = SourceCache(paths.sources_dir())
        self.mpi = ToolContext(
            "mpi",
            lambda: mpi_values(self.choose_mpi(), self.say),
            "install an MPI (conda's mpich/openmpi, or the system's) or set `_pmpm: {mpi: ...}`",
        )
        self._pythons: dict[Path, ToolContext] = {}
        self._mpi_choice: MpiChoice | None = None
        self.cache = BinaryCache(self.spec.pmpm.cache, self.spec.path.parent, self.say)
        self._hosts: dict[str, Any] = {}
        self.planned: list[Step] = []
        self.prefix_lock = threading.Lock()
        self.tree_stamps: dict[str, str] = {}  # local source folders, for the next no-op check

    @cached_property
    def _prefixes(self) -> list[Path]:
        """Where builds look for headers and libraries: the compiled stack, then the conda stack."""
        return [self.prefix] + ([self.base] if self.base not in (None, self.prefix) else [])

    def host_path(self) -> str:
        return host_path(self._prefixes)

    def choose_mpi(self) -> MpiChoice:
        """The run's MPI (:func:`pmpm.host.mpi.choice.decide`), decided once: a choice that holds across the
        conda solve is kept, one that depends on it is made again after it."""
        if self._mpi_choice is None or not self._mpi_choice.final:
            setting = self.spec.pmpm.mpi
            self._mpi_choice = decide(setting, system=self.system, base=self.base, prefix=self.prefix)
        return self._mpi_choice

    def python_exe(self) -> Path | None:
        """The interpreter compiled Python packages are built for: the conda stack's, or in
        system_install mode without one, the host's ``python3`` on PATH."""
        if self.base is not None:
            python = self.base / "bin" / "python"
            return python if python.exists() else None
        found = shutil.which("python3", path=self.host_path())
        return Path(found) if found else None

    # ---------------------------------------------------------------- host and flags

    def host(self, target: str):
        if target not in self._hosts:
            from pmpm.host.detect import detect_host

            self._hosts[target] = detect_host(
                target,
                self.spec.pmpm.compilers or None,
                path=self.host_path(),
                conda_bin=None if self.system else self.prefix / "bin",
            )
        return self._hosts[target]

    def stacks(self, where: Path | None) -> list[Path]:
        """The prefixes a build sees: its build prefix (conda_install), or both stacks."""
        return [where] if where is not None else self._prefixes

    def flags(self, host, where: Path | None = None) -> Flags:
        base = host.flags()
        stacks = self.stacks(where)
        return Flags(
            cflags=base.cflags,
            cxxflags=base.cxxflags,
            fflags=base.fflags,
            ldflags=" ".join(f"-L{p / 'lib'} -Wl,-rpath,{p / 'lib'}" for p in stacks),
            cppflags=" ".join(f"-I{p / 'include'}" for p in stacks),
        )

    def context(self, host, flags: Flags, where: Path | None = None) -> dict[str, Any]:
        return {
            "prefix": str(where or self.prefix),
            "conda_prefix": str(self.base) if self.base is not None else "",
            "flags": asdict(flags),
            "target": host.as_template(),
            "compilers": {k: c.path for k, c in host.compilers.items()},
            "mpi": self.mpi,
            "python": self._python_context(where or self.prefix),
            "jobs": self.jobs,
        }

    def _python_context(self, where: Path) -> ToolContext:
        """``{{ python.* }}`` for packages installed under ``where`` (site_packages differs)."""
        if where not in self._pythons:
            self._pythons[where] = ToolContext(
                "python",
                lambda: python_values(self.python_exe(), where),
                "add python to the env file's dependencies"
                if self.base is not None
                else "put the site's python3 on PATH (e.g. `module load python`)",
            )
        return self._pythons[where]

    # ---------------------------------------------------------------- planning

    def _requests(self) -> dict[str, Any]:
        missing = unknown_recipes(self.spec, self.book)  # all at once, each with its line
        if missing:
            raise combined(missing, "in the env file's `_pmpm.packages`")
        return {r.name: r for r in self.spec.pmpm.packages}

    def build_prefix(self, name: str) -> Path | None:
        """Where a package is built in conda_install mode: a padded folder of its own holding
        only what it requires, named longer than any prefix it will be installed into, so the
        installer relocates its text and binary placeholders anywhere, as conda-build's
        ``_h_env_placehold...`` does. That makes the package reusable by other prefixes and
        machines (the binary cache). None in system_install mode and for prefixes too long to
        fit: such builds happen in PREFIX itself, which is then part of the build key."""
        if self.system:
            return None
        head = f"{paths.build_prefix_dir()}/{name}-{digest({'prefix': str(self.prefix)})[:8]}_"
        pad = BUILD_PREFIX_LENGTH - len(head)
        if pad < 8 or len(str(self.prefix)) > BUILD_PREFIX_LENGTH:
            return None
        return Path(head + ("placehold_" * 26)[:pad])

    def _render(self, name: str, *, requires_only: bool = False, place: Path | str | None = "auto"):
        request = self._requests().get(name)
        where = located(self.spec.path, request.line) if request else None
        options = dict(request.options) if request else {}
        target = str(options.get("target") or self.spec.pmpm.target)
        host = self.host(target)
        if place == "auto":
            place = self.build_prefix(name)
        place = Path(place) if place is not None else None
        flags = self.flags(host, place)
        python = self._python_context(place or self.prefix)
        self.mpi.used = python.used = False
        recipe, chosen = recipe_for(
            self.book,
            name,
            options,
            self.context(host, flags, place),
            where=where,
            requires_only=requires_only,
        )
        if place is not None and self.mpi.used and self.mpi.provider() == "conda":
            # conda's MPI wrappers name PREFIX itself: such a package is built there
            return self._render(name, requires_only=requires_only, place=None)
        if recipe.system == "python":  # built by that interpreter, whether the recipe names it or not
            python.used = True
        tools = {"mpi": self.mpi.identity(), "python": python.identity()}
        return recipe, chosen, host, flags, target, where, tools, place

    def conda_specs(self) -> list[str]:
        """Conda packages the recipes build against: they join the conda stage's solve."""
        seen: dict[str, Any] = {}

        def requires(name: str) -> list[str]:
            if name not in seen:
                seen[name] = self._render(name, requires_only=True)[0]
            return seen[name].requires_recipes

        order(self._requests(), self.book, requires)
        return [s for recipe in seen.values() for s in recipe.requires_conda]

    def forget_environment(self) -> None:
        """The conda stage just changed the prefix: compilers, MPI and python are found again
        (conda's compilers or MPI may have arrived with it)."""
        self._hosts.clear()
        self.mpi.forget()
        self._pythons.clear()

    def plan(self, installed: list) -> list[Step]:
        from pmpm.sources.spec import SourceSpec

        rendered: dict[str, tuple] = {}

        def prepare(name: str):
            if name not in rendered:
                rendered[name] = self._render(name)
            return rendered[name]

        names = order(self._requests(), self.book, lambda n: prepare(n)[0].requires_recipes)
        by_name = {r.name.normalized: r for r in installed}
        conda_side = by_name
        if self.system:
            stack = conda.installed_records(self.base) if self.base is not None else []
            conda_side = {r.name.normalized: r for r in stack}
        steps: dict[str, Step] = {}
        for name in names:
            recipe, options, host, flags, target, where, tools, place = prepare(name)
            request = self._requests().get(name)
            if request is not None and {"path", "git", "url", "pypi"} & request.options.keys():
                # the env file gave the source: its relative folders and its errors are the file's
                base, said = self.spec.path.parent, where or str(self.spec.path)
            else:
                plugin = recipe.origin.startswith("plugin")
                base = self.spec.path.parent if plugin else Path(recipe.origin).parent
                said = f"{recipe.origin} (source)"
            source = SourceSpec.from_dict(recipe.source, where=said, base_dir=base)
            if source.kind == "path" and source.path is not None:
                # stamped before it is read: an edit made while this run builds is seen next time
                self.tree_stamps[str(source.path)] = tree_stamp(source.path)
            fetched = self.sources.fetch(source, offline=self.offline, python=self._python_exe())
            conda_deps = {}
            for requirement in recipe.requires_conda:
                dep = requirement.split()[0].split("=")[0].split("<")[0].split(">")[0]
                record = conda_side.get(dep)
                if record is not None:
                    conda_deps[dep] = f"{record.version}-{record.build}"
                else:
                    conda_deps[dep] = "from the host" if self.base is None else "not installed yet"
            raw = BuildInputs(
                recipe=digest({"recipe": self.neutral(recipe.canonical(), place)}),
                recipe_plugin=self._recipe_plugin(name),
                builder=self._builder_identity(recipe, source, host, flags, place),
                source=fetched.identity,
                flags=asdict(flags),
                compilers={
                    k: f"{c.vendor} {c.version} {c.path} ({c.version_string})"
                    for k, c in sorted(host.compilers.items())
                },
                mpi=tools["mpi"],
                python=tools["python"],
                target=host.target,
                options=options,
                prefix="relocatable" if place is not None else str(self.prefix),
                recipes={dep: steps[dep].key for dep in recipe.requires_recipes},
                conda=conda_deps,
            )
            inputs = BuildInputs(**self.neutral(raw.as_dict(), place))
            step = Step(
                name,
                recipe,
                source,
                fetched.identity,
                target,
                inputs,
                inputs.key,
                where=where,
                fetched=fetched,
                place=place,
            )
            current = by_name.get(name)
            forced = "--fresh" if self.fresh else "--rebuild" if name in self.rebuild else None
            if forced:  # built again, never taken from the cache
                step.decision = "rebuild" if current is not None else "new"
                step.reasons = [f"forced by {forced}"]
            elif current is not None and str(current.build) == step.build_string:
                step.decision = "up to date"
            elif place is not None and (hit := self.cache.find(step.filename)) is not None:
                step.decision, step.cached = "from cache", hit
                step.reasons = [f"built before: {hit.parent.parent}"]
            elif current is not None:
                step.decision = "rebuild"
                old = stored_inputs(self.prefix, name)
                step.reasons = step.inputs.reasons(old)
                if old and source.kind == "path" and old.get("source") != inputs.source:
                    said = self._source_change(source, old["source"], inputs.source)
                    step.reasons = [said if r.startswith("source changed") else r for r in step.reasons]
            steps[name] = step
        self.planned = list(steps.values())
        return self.planned

    def _recipe_plugin(self, name: str) -> str | None:
        """The distribution (and version) of the plugin a recipe comes from: an upgrade rebuilds."""
        plugin = self.book.find(name).plugin
        return distribution_of(plugin) if plugin is not None else None

    def _builder_identity(self, recipe, source, host, flags: Flags, place: Path | None) -> dict[str, str]:
        """The builder's part of the key (pmpm.build.inputs.builder_identity), its commands
        given for this build's prefix, flags and compilers with placeholder folders."""
        ctx = BuildContext(
            name=recipe.name,
            version=recipe.version,
            source_dir=Path("/${src}"),
            build_dir=Path("/${build}"),
            stage_dir=Path("/${stage}"),
            prefix=place or self.prefix,
            jobs=1,  # the share of --jobs a build gets is not an input: it changes no bits
            flags=flags,
            env=build_env(self, host, flags, recipe.env, jobs=1, where=place),
            args=tuple(recipe.args),
            script=recipe.script,
        )
        tree = source.path if source.kind == "path" else None
        return builder_identity(recipe, tree, ctx, lambda value: self.neutral(value, place))

    def _python_exe(self) -> str | None:
        python = self.python_exe()
        return str(python) if python is not None else None

    def neutral(self, value: Any, place: Path | None) -> Any:
        """``value`` with the build prefix and PREFIX written as a placeholder: a relocatable
        package's key is the same for every prefix and every machine's cache folder."""
        if place is None:
            return value
        text = json.dumps(value, sort_keys=True)
        # the build prefix stands for PREFIX (the installer relocates one to the other); the
        # token is the record's (pmpm.record.api)
        for path in (place, self.prefix):
            text = text.replace(json.dumps(str(path))[1:-1], "${prefix}")
        return json.loads(text)

    def _source_change(self, source, old: str, new: str) -> str:
        """ "source changed: a.c, b.h (+3 more)" when the local tree's stat cache remembers both."""
        from pmpm.sources.tree import changed_files, stat_cache_for

        files = changed_files(stat_cache_for(self.sources.root / "tree-hashes", source.path), old, new)
        if not files:
            return f"source changed ({old} -> {new})"
        shown = ", ".join(files[:5]) + (f" (+{len(files) - 5} more)" if len(files) > 5 else "")
        return f"source changed: {shown}"

    def watched_files(self) -> list[Path]:
        """Files whose change must end the no-op shortcut: recipe files and the compilers."""
        files = [Path(source.origin) for source in self.book.sources().values() if source.text is not None]
        files += [Path(c.path) for host in self._hosts.values() for c in host.compilers.values()]
        # plugins: an upgrade replaces their metadata, an edit changes their module
        plugins = [s.plugin for s in self.book.sources().values() if s.plugin is not None]
        files += [Path(f) for ep in plugins for f in distribution_files(ep)]
        files += [Path(f) for f in registry.watched_files()]
        return files
