"""The compile stage's services and its planning: the ``_pmpm.packages`` builds planned against
what the stacks hold (a frozen :class:`pmpm.build.plan.BuildPlan`); :mod:`pmpm.build.schedule`
runs a plan and returns a :class:`pmpm.build.result.BuildResult`.

:class:`Compiler` is the run's configuration and services (recipes, sources, binary cache, host
detection, MPI choice); it keeps no result of a stage for another stage to read: what planning
decides is in the plan it returns.

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
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm import paths
from pmpm.build import planning, reproducible
from pmpm.build.binary_cache import BinaryCache
from pmpm.build.environment import ToolContext, ToolValues, mpi_values, python_values
from pmpm.build.plan import BuildPlan, digest, order, recipe_for
from pmpm.build.recipe import Recipe, RecipeBook, unknown_recipes
from pmpm.builders import Flags
from pmpm.errors import combined, located
from pmpm.host.detect import detect_host
from pmpm.sources.cache import SourceCache

if TYPE_CHECKING:
    from pmpm.host.detect import HostProfile
    from pmpm.host.mpi.choice import MpiChoice

Say = Callable[[str], None]
#: what a local tree's copy leaves out (VCS data, the user's own build output), as its hash does
_untracked = paths.untracked


#: length of the padded build prefix: installs relocate into any PREFIX up to this long
BUILD_PREFIX_LENGTH = 240

host_path = paths.host_search_path  # PATH without the environment's own folders


@dataclass(frozen=True)
class Rendered:
    """One recipe rendered for one build: what planning reads from it."""

    recipe: Recipe
    options: dict[str, Any]
    host: HostProfile
    flags: Flags
    target: str
    where: str | None
    mpi: str | None  # the MPI's identity when the recipe used it
    python: str | None  # the interpreter's identity when the recipe used it
    place: Path | None  # the padded build prefix, or None: built in PREFIX


@dataclass
class _Found:
    """What the stacks offer as they are now (compilers by target, MPI, python): found when
    first asked for and kept for one state of the stacks; a new one after the conda stage
    changed them."""

    hosts: dict[str, Any] = field(default_factory=dict)
    mpi: ToolValues | None = None
    pythons: dict[Path, ToolValues] = field(default_factory=dict)


@dataclass
class Compiler:
    """The compile stage's configuration and services for one run (conda_install, system_install
    or a lock's rebuild): recipes, sources, the binary cache, host detection and the run's MPI
    choice. Planning returns its decisions (:meth:`plan`), nothing is left here for later.

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
    #: the CPU target these builds are for (one stack of several targets); None: the env
    #: file's ``target``. A package's own ``target`` option still wins.
    target: str | None = None

    def __post_init__(self) -> None:
        #: the conda stack whose ``bin`` holds conda's compilers: PREFIX, also for one target's
        #: stack of several (PREFIX/compile/T, which becomes its own base below)
        self.conda_stack: Path | None = None if self.system else (self.base or self.prefix)
        if not self.system:
            self.base = self.prefix
        self.jobs = self.jobs or os.cpu_count() or 1
        self.book = RecipeBook(list(self.spec.pmpm.recipes))
        self.sources = SourceCache(paths.sources_dir())
        self._mpi_choice: MpiChoice | None = None
        self.cache = BinaryCache(self.spec.pmpm.cache, self.spec.path.parent, self.say)
        self._found = _Found()
        self.prefix_lock = threading.Lock()  # one installer at a time while builds run side by side

    @cached_property
    def _prefixes(self) -> list[Path]:
        """Where builds look for headers and libraries: the compiled stack, then the conda stack."""
        return [self.prefix] + ([self.base] if self.base is not None and self.base != self.prefix else [])

    def host_path(self) -> str:
        return host_path(self._prefixes)

    def choose_mpi(self) -> MpiChoice:
        """The run's MPI (:func:`pmpm.host.mpi.choice.decide`), decided once: a choice that holds across the
        conda solve is kept, one that depends on it is made again after it."""
        if self._mpi_choice is None or not self._mpi_choice.final:
            # MPI discovery (pmpm.host.mpi: ~1000 lines) loads only for a recipe that uses MPI
            from pmpm.host.mpi.choice import decide as decide_mpi

            setting = self.spec.pmpm.mpi
            self._mpi_choice = decide_mpi(setting, system=self.system, base=self.base, prefix=self.prefix)
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

    def host(self, target: str) -> HostProfile:
        """The host as the builds for ``target`` see it (compilers, flags), found once per state
        of the stacks."""
        hosts = self._found.hosts
        if target not in hosts:
            hosts[target] = detect_host(
                target,
                self.spec.pmpm.compilers or None,
                path=self.host_path(),
                conda_bin=self.conda_stack / "bin" if self.conda_stack is not None else None,
            )
        return hosts[target]

    def stacks(self, where: Path | None) -> list[Path]:
        """The prefixes a build sees: its build prefix (conda_install), or both stacks."""
        return [where] if where is not None else self._prefixes

    def flags(self, host: HostProfile, where: Path | None = None, work: Path | None = None) -> Flags:
        """``work``: the build folder, mapped out of the compiled files (given when building,
        not when planning: the folder's name changes no bits then, so it is not in the key)."""
        base = host.flags()
        stacks = self.stacks(where)

        def mapped(flags: str, lang: str) -> str:
            compiler = host.compilers.get(lang)
            extra = reproducible.prefix_map(work, compiler.vendor) if work and compiler else ""
            return " ".join(f for f in (flags, extra) if f)

        return Flags(
            cflags=mapped(base.cflags, "cc"),
            cxxflags=mapped(base.cxxflags, "cxx"),
            fflags=mapped(base.fflags, "fc"),
            ldflags=" ".join(f"-L{p / 'lib'} -Wl,-rpath,{p / 'lib'}" for p in stacks),
            cppflags=" ".join(f"-I{p / 'include'}" for p in stacks),
        )

    def _mpi_context(self) -> ToolContext:
        """``{{ mpi.* }}`` for one rendering: it notes whether that recipe used it."""
        if self._found.mpi is None:
            self._found.mpi = ToolValues(lambda: mpi_values(self.choose_mpi(), self.say))
        return ToolContext(
            "mpi",
            self._found.mpi,
            "install an MPI (conda's mpich/openmpi, or the system's) or set `_pmpm: {mpi: ...}`",
        )

    def _python_context(self, where: Path) -> ToolContext:
        """``{{ python.* }}`` for one rendering of a package installed under ``where``
        (site_packages differs)."""
        pythons = self._found.pythons
        if where not in pythons:
            pythons[where] = ToolValues(lambda: python_values(self.python_exe(), where))
        return ToolContext(
            "python",
            pythons[where],
            "add python to the env file's dependencies"
            if self.base is not None
            else "put the site's python3 on PATH (e.g. `module load python`)",
        )

    def context(
        self, host: HostProfile, flags: Flags, where: Path | None, mpi: ToolContext, python: ToolContext
    ) -> dict[str, Any]:
        return {
            "prefix": str(where or self.prefix),
            "conda_prefix": str(self.base) if self.base is not None else "",
            "flags": asdict(flags),
            "target": host.as_template(),
            "compilers": {k: c.path for k, c in host.compilers.items()},
            "mpi": mpi,
            "python": python,
            "jobs": self.jobs,
        }

    # ---------------------------------------------------------------- planning

    def requests(self) -> dict[str, Any]:
        """The env file's package requests by name (unknown recipes: one error naming them all)."""
        missing = unknown_recipes(self.spec, self.book)  # all at once, each with its line
        if missing:
            raise combined(missing, "in the env file's `_pmpm.packages`")
        return {r.name: r for r in self.spec.pmpm.packages}

    def build_prefix(self, name: str) -> Path | None:
        """Where a package is built in conda_install mode: a padded folder of its own holding
        only what it requires, named longer than any prefix it will be installed into, so the
        installer relocates its text and binary placeholders anywhere, as conda-build's
        ``_h_env_placehold...`` does. That makes the package reusable by other prefixes and
        machines (the binary cache). None in system_install mode: such builds happen in PREFIX
        itself, which is then part of the build key. A PREFIX longer than the padded prefix
        still gets one: a cached build whose files all relocate into it (relative RPATHs leave
        most packages without binary placeholders) is installed, else planning builds in PREFIX
        (:func:`pmpm.build.planning.plan`)."""
        if self.system:
            return None
        # the same path for every user and cache folder (pmpm.build.reproducible), told apart
        # by the recipe (so other recipes of the name build beside it); the cache's own folder
        # only when another user holds that one
        recipe = self.book.find(name)
        tag = digest({"recipe": recipe.text or recipe.origin})[:8]
        place = reproducible.build_place(f"{name}-{tag}", BUILD_PREFIX_LENGTH)
        if place is not None:
            return place
        head = f"{paths.build_prefix_dir()}/{name}-{digest({'prefix': str(self.prefix)})[:8]}_"
        pad = BUILD_PREFIX_LENGTH - len(head)
        if pad < 8:
            return None
        return Path(head + ("placehold_" * 26)[:pad])

    def render(
        self, name: str, *, requires_only: bool = False, place: Path | str | None = "auto"
    ) -> Rendered:
        request = self.requests().get(name)
        where = located(self.spec.path, request.line) if request else None
        options = dict(request.options) if request else {}
        target = str(options.get("target") or self.target or self.spec.pmpm.target)
        host = self.host(target)
        if place == "auto":
            place = self.build_prefix(name)
        place = Path(place) if place is not None else None
        flags = self.flags(host, place)
        mpi, python = self._mpi_context(), self._python_context(place or self.prefix)
        recipe, chosen = recipe_for(
            self.book,
            name,
            options,
            self.context(host, flags, place, mpi, python),
            where=where,
            requires_only=requires_only,
        )
        if place is not None and mpi.used and mpi.provider() == "conda":
            # conda's MPI wrappers name PREFIX itself: such a package is built there
            return self.render(name, requires_only=requires_only, place=None)
        # a python recipe is built by that interpreter, whether the recipe names it or not
        python_identity = python.identity(used=recipe.system == "python")
        return Rendered(recipe, chosen, host, flags, target, where, mpi.identity(), python_identity, place)

    def conda_specs(self) -> list[str]:
        """Conda packages the recipes build against: they join the conda stage's solve (and the
        solved prefix then feeds :meth:`plan`)."""
        seen: dict[str, Recipe] = {}

        def requires(name: str) -> list[str]:
            if name not in seen:
                seen[name] = self.render(name, requires_only=True).recipe
            return seen[name].requires_recipes

        order(self.requests(), self.book, requires)
        return [s for recipe in seen.values() for s in recipe.requires_conda]

    def plan(self, installed: list[Any], *, stacks_changed: bool = False) -> BuildPlan:
        """The plan against the compiled stack's ``installed`` records
        (:func:`pmpm.build.planning.plan`). ``stacks_changed``: the conda stage just changed
        the prefix, so compilers, MPI and python are found again (conda's compilers or MPI may
        have arrived with it)."""
        if stacks_changed:
            self._found = _Found()
        return planning.plan(self, installed)

    def hosts_found(self) -> list[HostProfile]:
        """The hosts found for the stacks as they are now (their compilers are watched)."""
        return list(self._found.hosts.values())

    def neutral(self, value: Any, place: Path | None) -> Any:
        """``value`` with the build prefix and PREFIX written as a placeholder: a relocatable
        package's key is the same for every prefix and every machine's cache folder."""
        if place is None:
            return value
        text = json.dumps(value, sort_keys=True)
        # the build prefix stands for PREFIX (the installer relocates one to the other); the
        # token is the record's (pmpm.record.api). One target's stack of several stands for the
        # conda stack around it (its compilers are conda's there): the key is the one-stack key
        for path in (place, self.prefix, *([self.conda_stack] if self.conda_stack is not None else [])):
            text = text.replace(json.dumps(str(path))[1:-1], "${prefix}")
        return json.loads(text)
