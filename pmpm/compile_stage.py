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
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm import conda, paths
from pmpm.binary_cache import BinaryCache, build_channel, index
from pmpm.build_inputs import BuildInputs, distribution_files, distribution_of
from pmpm.builders import Flags
from pmpm.errors import PmpmError, combined, located
from pmpm.fsutil import atomic_write_text, mirror_tree
from pmpm.plan import Step, digest, order, recipe_for, stored_inputs
from pmpm.recipe import RecipeBook, unknown_recipes
from pmpm.record import build_details  # the record's view of a build, kept beside its key
from pmpm.state import tree_stamp

if TYPE_CHECKING:
    from pmpm.mpi import MpiChoice

Say = Callable[[str], None]
#: what a local tree's copy leaves out (VCS data, the user's own build output), as its hash does
_untracked = paths.untracked


#: length of the padded build prefix: installs relocate into any PREFIX up to this long
BUILD_PREFIX_LENGTH = 240


class ToolContext:
    """A template object (``{{ mpi.cc }}``, ``{{ python.site_packages }}``) that notes its use.

    Only a recipe that reads it depends on it: its identity then joins the build key.
    """

    def __init__(self, what: str, values: Callable[[], dict[str, str]], missing_hint: str) -> None:
        self._what = what
        self._values = values
        self._hint = missing_hint
        self.used = False

    @cached_property
    def _resolved(self) -> dict[str, str]:
        return self._values()

    def __getattr__(self, item: str) -> str:
        if item.startswith("_"):
            raise AttributeError(item)
        self.used = True
        values = self._resolved
        if not values:
            raise PmpmError(
                f"a recipe uses {{{{ {self._what}.{item} }}}} but there is no {self._what}", hint=self._hint
            )
        if item not in values:
            raise AttributeError(item)
        return values[item]

    def identity(self) -> str | None:
        return self._resolved.get("identity") if self.used else None

    def forget(self) -> None:
        self.__dict__.pop("_resolved", None)

    def provider(self) -> str | None:
        """Where it comes from (``conda``/``external``), without counting as a use."""
        return self._resolved.get("provider")


def _mpi_values(choice: MpiChoice, say: Say) -> dict[str, str]:
    """The chosen MPI as recipes see it; the choice and its reason are said once, when used."""
    say(f"MPI: {choice.reason}")
    mpi = choice.mpi
    if mpi is None:
        return {}
    return {**{k: str(v) for k, v in mpi.as_template().items()}, "identity": mpi.identity()}


#: where pip puts a package for ``--prefix P`` (the same scheme for conda's and the host's python)
_SITE = (
    "import sys, sysconfig; p = sys.argv[1]; "
    "print(sysconfig.get_path('purelib', 'posix_prefix', {'base': p, 'platbase': p})); "
    "print(sys.version.split()[0])"
)


def _python_values(python: Path | None, prefix: Path) -> dict[str, str]:
    if python is None:
        return {}
    out = subprocess.run(
        [python, "-c", _SITE, str(prefix)], capture_output=True, text=True, check=False
    ).stdout.split()
    if len(out) != 2:
        return {}
    return {
        "executable": str(python),
        "site_packages": out[0],
        "version": out[1],
        "identity": f"{os.path.realpath(python)} {out[1]}",
    }


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
        from pmpm.sources import SourceCache

        if not self.system:
            self.base = self.prefix
        self.jobs = self.jobs or os.cpu_count() or 1
        self.book = RecipeBook(list(self.spec.pmpm.recipes))
        self.sources = SourceCache(paths.sources_dir())
        self.mpi = ToolContext(
            "mpi",
            lambda: _mpi_values(self.choose_mpi(), self.say),
            "install an MPI (conda's mpich/openmpi, or the system's) or set `_pmpm: {mpi: ...}`",
        )
        self._pythons: dict[Path, ToolContext] = {}
        self._mpi_choice: MpiChoice | None = None
        self.cache = BinaryCache(self.spec.pmpm.cache, self.spec.path.parent, self.say)
        self._hosts: dict[str, Any] = {}
        self.planned: list[Step] = []
        self._prefix_lock = threading.Lock()
        self.tree_stamps: dict[str, str] = {}  # local source folders, for the next no-op check

    @cached_property
    def _prefixes(self) -> list[Path]:
        """Where builds look for headers and libraries: the compiled stack, then the conda stack."""
        return [self.prefix] + ([self.base] if self.base not in (None, self.prefix) else [])

    def host_path(self) -> str:
        return host_path(self._prefixes)

    def choose_mpi(self) -> MpiChoice:
        """The run's MPI (:func:`pmpm.mpi.decide`), decided once: a choice that holds across the
        conda solve is kept, one that depends on it is made again after it."""
        if self._mpi_choice is None or not self._mpi_choice.final:
            from pmpm.mpi import decide

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
            from pmpm.host import detect_host

            self._hosts[target] = detect_host(
                target,
                self.spec.pmpm.compilers or None,
                path=self.host_path(),
                conda_bin=None if self.system else self.prefix / "bin",
            )
        return self._hosts[target]

    def _stacks(self, where: Path | None) -> list[Path]:
        """The prefixes a build sees: its build prefix (conda_install), or both stacks."""
        return [where] if where is not None else self._prefixes

    def flags(self, host, where: Path | None = None) -> Flags:
        base = host.flags()
        stacks = self._stacks(where)
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
                lambda: _python_values(self.python_exe(), where),
                "add python to the env file's dependencies"
                if self.base is not None
                else "put the site's python3 on PATH (e.g. `module load python`)",
            )
        return self._pythons[where]

    def build_env(
        self,
        host,
        flags: Flags,
        recipe_env: dict[str, str],
        *,
        jobs: int | None = None,
        where: Path | None = None,
        python: Path | None = None,
    ) -> dict[str, str]:
        env = dict(os.environ)
        # the prefix's tools first (in system_install mode: the compiled stack's, then the host's,
        # then the conda stack's); build tools installed beside pmpm (meson, ninja, cmake from
        # PyPI) last, so a pipx-installed pmpm can build meson projects. `python` is always the
        # interpreter packages are built for (a folder with that one link comes first).
        python = python or self.python_exe()
        shims = [str(self._python_shim(python))] if python is not None else []
        stacks = [str(p / "bin") for p in self._stacks(where)]
        if self.system:
            path = [*shims, stacks[0], self.host_path(), *stacks[1:], str(Path(sys.executable).parent)]
        else:
            path = [*shims, *stacks, env.get("PATH", ""), str(Path(sys.executable).parent)]
        env["PATH"] = os.pathsep.join(p for p in path if p)
        for var, lang in (("CC", "cc"), ("CXX", "cxx"), ("FC", "fc"), ("F77", "fc")):
            if lang in host.compilers:
                env[var] = host.compilers[lang].path
        env.update(
            CFLAGS=flags.cflags,
            CXXFLAGS=flags.cxxflags,
            FFLAGS=flags.fflags,
            FCFLAGS=flags.fflags,
            CPPFLAGS=flags.cppflags,
            LDFLAGS=flags.ldflags,
            PKG_CONFIG_PATH=os.pathsep.join(
                str(p / sub / "pkgconfig") for p in self._stacks(where) for sub in ("lib", "share")
            ),
            CMAKE_PREFIX_PATH=os.pathsep.join(str(p) for p in self._stacks(where)),
            CPU_COUNT=str(jobs or self.jobs),
        )
        env.update(recipe_env)
        return env

    def _python_shim(self, python: Path) -> Path:
        shim = paths.python_shims_dir() / digest({"python": str(python)})[:12]
        link = shim / "python"
        if not link.is_symlink() or os.readlink(link) != str(python):
            shim.mkdir(parents=True, exist_ok=True)
            # made aside and renamed over: builds running side by side may get here together
            temp = shim / f".python-{os.getpid()}-{threading.get_ident()}"
            temp.unlink(missing_ok=True)
            temp.symlink_to(python)
            os.replace(temp, link)
        return shim

    # ---------------------------------------------------------------- planning

    def _requests(self) -> dict[str, Any]:
        missing = unknown_recipes(self.spec, self.book)
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
        from pmpm.sources import SourceSpec

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
                recipe=digest({"recipe": self._neutral(recipe.canonical(), place)}),
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
            inputs = BuildInputs(**self._neutral(raw.as_dict(), place))
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
        """The builder's part of the key (pmpm.build_inputs.builder_identity), its commands
        given for this build's prefix, flags and compilers with placeholder folders."""
        from pmpm.build_inputs import builder_identity
        from pmpm.builders import BuildContext

        ctx = BuildContext(
            name=recipe.name,
            version=recipe.version,
            source_dir=Path("/${src}"),
            build_dir=Path("/${build}"),
            stage_dir=Path("/${stage}"),
            prefix=place or self.prefix,
            jobs=1,  # the share of --jobs a build gets is not an input: it changes no bits
            flags=flags,
            env=self.build_env(host, flags, recipe.env, jobs=1, where=place),
            args=tuple(recipe.args),
            script=recipe.script,
        )
        tree = source.path if source.kind == "path" else None
        return builder_identity(recipe, tree, ctx, lambda value: self._neutral(value, place))

    def _python_exe(self) -> str | None:
        python = self.python_exe()
        return str(python) if python is not None else None

    def _neutral(self, value: Any, place: Path | None) -> Any:
        """``value`` with the build prefix and PREFIX written as a placeholder: a relocatable
        package's key is the same for every prefix and every machine's cache folder."""
        if place is None:
            return value
        text = json.dumps(value, sort_keys=True)
        # the build prefix stands for PREFIX (the installer relocates one to the other); the
        # token is the record's (pmpm.record)
        for path in (place, self.prefix):
            text = text.replace(json.dumps(str(path))[1:-1], "${prefix}")
        return json.loads(text)

    # ---------------------------------------------------------------- building

    def run(self, steps: list[Step]) -> None:
        for step in steps:
            self.say(f"  {step.explain()}")
        cached = [step for step in steps if step.cached is not None]
        if cached:
            # one transaction for all of them: their keys already name the builds they require
            self._take_from_cache(cached)
        built = [step for step in steps if step.decision != "up to date" and step.cached is None]
        if built:
            from pmpm.diskspace import needs_space

            # a local tree's build folder is kept for the next build, but not half written
            dev = [self.dev_dir(s.name) for s in built if s.source.kind == "path"]
            with needs_space("building compiled packages", paths.build_dir(), cleanup=dev):
                self._schedule(built)
                index(build_channel())
        self.cache.finish()

    def _schedule(self, built: list[Step]) -> None:
        """Build each package as soon as the packages it requires are installed, several at a
        time within one budget of ``jobs``: ``W`` packages at once (the most that can be ready
        together, at most ``jobs``), each given ``jobs // W`` for its own make/ninja.

        After a failure nothing new starts; builds already running finish (their logs stay
        complete), then the first failure is raised and the caller's journal puts PREFIX back.
        """
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        from pmpm.progress import BuildProgress

        names = {s.name for s in built}
        needs = {s.name: set(s.recipe.requires_recipes) & names for s in built}  # the rest are in
        workers = max(1, min(self.jobs, _width(needs)))
        share = max(1, self.jobs // workers)
        if workers > 1:
            self.say(f"building {len(built)} packages, up to {workers} at a time ({share} jobs each)")
        waiting = {s.name: s for s in built}
        running: dict[Any, Step] = {}
        done: set[str] = set()
        failure: BaseException | None = None
        with BuildProgress(len(built), self.say) as progress, ThreadPoolExecutor(workers) as pool:
            while waiting or running:
                ready = [n for n in waiting if needs[n] <= done] if failure is None else []
                for name in ready[: workers - len(running)]:
                    step = waiting.pop(name)
                    running[pool.submit(self._build, step, share, progress)] = step
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    step = running.pop(future)
                    if future.exception() is not None:
                        failure = failure or future.exception()
                    else:
                        done.add(step.name)
        if failure is not None:
            raise failure

    def _build(self, step: Step, jobs: int | None = None, progress=None) -> None:
        from pmpm.builders import registry
        from pmpm.execute import build_package

        recipe = step.recipe
        host = self.host(step.target)
        place = step.place
        flags = self.flags(host, place)
        local = step.source.kind == "path"
        if local:
            # a local tree under development: its build folder is kept (per prefix and package)
            # so the next build recompiles only what changed; the copy is mirrored, not redone
            work = self.dev_dir(step.name)
            if self.fresh:
                shutil.rmtree(work, ignore_errors=True)
        else:
            work = paths.build_dir() / f"{step.name}-{step.key[:12]}"
            shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, exist_ok=True)
        try:
            tree = self.sources.unpack(step.fetched, work / "src")
            if local:
                # the user's working copy: builds never write into it
                manifest = work / "mirrored.json"
                previous = set(json.loads(manifest.read_text())) if manifest.is_file() else set()
                mirrored = mirror_tree(tree, work / "src", _untracked, previous)
                atomic_write_text(manifest, json.dumps(sorted(mirrored)))
                tree = work / "src"
            builder = (
                registry.get(recipe.system, where=recipe.origin) if recipe.system else registry.detect(tree)
            )
            with self._prefix_lock:
                installed = conda.installed_records(self.prefix)
            depends = self._depends(step, installed)
            python = self.python_exe()
            if place is not None:
                self._host_env(step, place, installed)
                if (place / "bin" / "python").exists():
                    python = place / "bin" / "python"
            jobs = jobs or self.jobs
            say = progress.say if progress is not None else self.say
            started = f"building {step.name} {recipe.version} ({builder.name}, target {host.target})"
            if progress is not None:
                progress.started(step.name, started)
            else:
                say(started)
            env = self.build_env(host, flags, recipe.env, jobs=jobs, where=place, python=python)
            result = build_package(
                name=step.name,
                version=recipe.version,
                build_string=step.build_string,
                source_tree=tree,
                work=work,
                prefix=place or self.prefix,
                builder=builder,
                flags=flags,
                env=env,
                args=recipe.args,
                script=recipe.script,
                jobs=jobs,
                python=python,
                depends=depends,
                out_dir=build_channel() / conda.host_subdir(),
                extra={"pmpm": {"key": step.key, "inputs": step.inputs.as_dict(), "origin": recipe.origin}},
                incremental=local,
            )
            if recipe.test_commands and self.spec.pmpm.tests:
                self._test(step, result, env, work / "build")
            with self._prefix_lock:  # one installer at a time; each sees the others' results
                self._install([result.package], conda.installed_records(self.prefix))
            self._keep_inputs(step)
            if place is not None:
                self.cache.store(result.package)
            finished = f"installed {step.name} {recipe.version} ({result.files} files; log: {result.log})"
            if progress is not None:
                progress.finished(step.name, finished)
            else:
                say(finished)
        finally:
            if self.keep_build:
                (progress.say if progress is not None else self.say)(
                    f"kept the build folder of {step.name}: {work}"
                )
            elif not local:  # a local tree's build folder stays for the next, incremental build
                shutil.rmtree(work, ignore_errors=True)
            if place is not None:
                shutil.rmtree(place, ignore_errors=True)

    def _test(self, step: Step, result, env: dict[str, str], cwd: Path) -> None:
        """Run the recipe's tests with the package installed beside what it requires: in its
        build prefix (conda_install mode: it holds the requirements, and ``{{ prefix }}`` names
        it), installed there from the fresh ``.conda`` by the conda installer; in
        system_install mode, where the stacks are the requirements, in the staged files."""
        from pmpm.execute import run_tests

        test_prefix = result.staged
        if step.place is not None:
            test_prefix = step.place
            self._install([result.package], conda.installed_records(test_prefix), prefix=test_prefix)
        run_tests(
            step.recipe.test_commands,
            test_prefix=test_prefix,
            built_for=step.place or self.prefix,
            env=env,
            cwd=cwd,
            log=result.log,
            package=step.name,
        )

    def _keep_inputs(self, step: Step) -> None:
        atomic_write_text(
            paths.build_inputs_file(self.prefix, step.name),
            json.dumps(
                {
                    **step.inputs.as_dict(),
                    "record": self._neutral(build_details(step, self.book), step.place),
                },
                indent=1,
                sort_keys=True,
            ),
        )

    def _take_from_cache(self, steps: list[Step]) -> None:
        packages = [step.cached for step in steps if step.cached is not None]
        with self._prefix_lock:
            self._install(packages, conda.installed_records(self.prefix))
        for step in steps:
            assert step.cached is not None
            self.cache.used(step.cached)
            self._keep_inputs(step)
            self.say(f"installed {step.name} {step.recipe.version} from the binary cache ({step.cached})")

    def _host_env(self, step: Step, place: Path, installed: list) -> None:
        """The build prefix holds what the package requires (and what that requires), linked
        from the package cache as in PREFIX, and nothing else: a fresh one per build."""
        by_name = {r.name.normalized: r for r in installed}
        wanted: set[str] = set()
        todo = [*step.inputs.conda, *step.inputs.recipes]
        while todo:
            name = todo.pop()
            if name in wanted or name not in by_name:
                continue
            wanted.add(name)
            todo += [d.split()[0] for d in by_name[name].depends]
        shutil.rmtree(place, ignore_errors=True)
        place.mkdir(parents=True)
        if wanted:
            conda.install([by_name[n] for n in sorted(wanted)], place, installed=[], requested=[])

    def _source_change(self, source, old: str, new: str) -> str:
        """ "source changed: a.c, b.h (+3 more)" when the local tree's stat cache remembers both."""
        from pmpm.sources import changed_files, stat_cache_for

        files = changed_files(stat_cache_for(self.sources.root / "tree-hashes", source.path), old, new)
        if not files:
            return f"source changed ({old} -> {new})"
        shown = ", ".join(files[:5]) + (f" (+{len(files) - 5} more)" if len(files) > 5 else "")
        return f"source changed: {shown}"

    def dev_dir(self, name: str) -> Path:
        return paths.dev_dir() / f"{name}-{digest({'prefix': str(self.prefix), 'name': name})[:12]}"

    def _depends(self, step: Step, installed: list) -> list[str]:
        by_name = {r.name.normalized: r for r in installed}
        depends = []
        # a package depends on what the installer can see in the same prefix: in system_install
        # mode the conda stack is another prefix, and its packages are recorded in the inputs
        for dep in [*([] if self.system else step.inputs.conda), *step.inputs.recipes]:
            record = by_name.get(dep)
            if record is not None:
                depends.append(f"{dep} =={record.version} {record.build}")
        return depends

    def _install(self, packages: list[Path], installed: list, prefix: Path | None = None) -> None:
        """Install package files into PREFIX (or ``prefix``) in one transaction, replacing
        same-named ones."""
        from rattler import RepoDataRecord

        async def read():
            return [await RepoDataRecord.from_package_archive(p) for p in packages]

        records = conda.run_coroutine(read(), settle=False)  # the install right after settles
        names = {r.name.normalized for r in records}
        keep = [r for r in installed if r.name.normalized not in names]
        asked = [request.name for request in self.spec.pmpm.packages]  # their records carry it
        conda.install(keep + records, prefix or self.prefix, installed=installed, requested=asked)

    def watched_files(self) -> list[Path]:
        """Files whose change must end the no-op shortcut: recipe files and the compilers."""
        from pmpm.builders import registry

        files = [Path(source.origin) for source in self.book.sources().values() if source.text is not None]
        files += [Path(c.path) for host in self._hosts.values() for c in host.compilers.values()]
        # plugins: an upgrade replaces their metadata, an edit changes their module
        plugins = [s.plugin for s in self.book.sources().values() if s.plugin is not None]
        files += [Path(f) for ep in plugins for f in distribution_files(ep)]
        files += [Path(f) for f in registry.watched_files()]
        return files


def _width(needs: dict[str, set[str]]) -> int:
    """How many packages can build at once: the most on one level of the dependency graph
    (level = length of the longest chain of requirements below a package)."""
    level: dict[str, int] = {}

    def depth(name: str) -> int:
        if name not in level:
            level[name] = 1 + max((depth(n) for n in needs[name]), default=0)
        return level[name]

    counts: dict[int, int] = {}
    for name in needs:
        counts[depth(name)] = counts.get(depth(name), 0) + 1
    return max(counts.values(), default=1)


def remove_compiled(prefix: Path, installed: list, wanted: set[str]) -> list[str]:
    """Compiled packages the env file no longer asks for are removed, as conda removes specs."""
    drop = {r.name.normalized for r in installed if conda.is_compiled(r) and r.name.normalized not in wanted}
    if drop:
        keep = [r for r in installed if r.name.normalized not in drop]
        conda.install(keep, prefix, installed=installed)  # the rest keep their requested specs
        for name in drop:
            paths.build_inputs_file(prefix, name).unlink(missing_ok=True)
    return sorted(drop)
