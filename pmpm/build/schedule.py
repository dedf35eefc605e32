"""Running the compile stage's plan: builds scheduled within one budget of jobs, each built,
tested, packed and installed, or taken from the binary cache; what was done is returned as a
:class:`pmpm.build.result.BuildResult`.

The caller holds the prefix lock and the journal: a failure anywhere puts PREFIX back as it was.
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rattler import RepoDataRecord

from pmpm import paths
from pmpm.build import provenance, reproducible
from pmpm.build.binary_cache import build_channel, index
from pmpm.build.environment import build_env
from pmpm.build.plan import BuildPlan, Step, digest
from pmpm.build.result import BuildResult
from pmpm.builders import registry
from pmpm.conda import engine as conda
from pmpm.conda.padding import check_build_prefix
from pmpm.env.diskspace import needs_space
from pmpm.fsutil import atomic_write_text, mirror_tree
from pmpm.progress import BuildProgress
from pmpm.record.api import build_details  # the record's view of a build, kept beside its key
from pmpm.runlog import log_path
from pmpm.sources.epoch import source_date_epoch

if TYPE_CHECKING:
    from pmpm.build.compile_stage import Compiler

#: what a local tree's copy leaves out (VCS data, the user's own build output), as its hash does
_untracked = paths.untracked


def run(compiler: Compiler, plan: BuildPlan) -> BuildResult:
    """Carry out the plan: cached packages installed, the rest built in dependency order."""
    steps = plan.steps
    for step in steps:
        compiler.say(f"  {step.explain()}")
    cached = [step for step in steps if step.cached is not None]
    if cached:
        # one transaction for all of them: their keys already name the builds they require
        _take_from_cache(compiler, cached)
    built = [step for step in steps if step.compiles]
    if built:
        # a local tree's build folder is kept for the next build, but not half written
        dev = [dev_dir(compiler, s) for s in built if s.source.kind == "path"]
        with needs_space("building compiled packages", paths.build_dir(), cleanup=dev):
            _schedule(compiler, built)
            index(build_channel())
    compiler.cache.finish()
    return BuildResult(
        plan,
        built=tuple(s.name for s in built),
        from_cache=tuple(s.name for s in cached),
        up_to_date=tuple(s.name for s in steps if s.decision == "up to date"),
    )


def _schedule(compiler: Compiler, built: list[Step]) -> None:
    """Build each package as soon as the packages it requires are installed, several at a
    time within one budget of ``jobs``: ``W`` packages at once (the most that can be ready
    together, at most ``jobs``), each given ``jobs // W`` for its own make/ninja.

    After a failure nothing new starts; builds already running finish (their logs stay
    complete), then the first failure is raised and the caller's journal puts PREFIX back.
    """
    needs = _needs(built)
    workers = max(1, min(compiler.jobs, _width(needs)))
    share = job_share(compiler, built)
    if workers > 1:
        compiler.say(f"building {len(built)} packages, up to {workers} at a time ({share} jobs each)")
    waiting = {s.name: s for s in built}
    running: dict[Any, Step] = {}
    done: set[str] = set()
    failure: BaseException | None = None
    with BuildProgress(len(built), compiler.say) as progress, ThreadPoolExecutor(workers) as pool:
        while waiting or running:
            ready = [n for n in waiting if needs[n] <= done] if failure is None else []
            for name in ready[: workers - len(running)]:
                step = waiting.pop(name)
                running[pool.submit(_build, compiler, step, share, progress)] = step
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


def _needs(built: list[Step]) -> dict[str, set[str]]:
    """Which of the packages being built each one requires (the rest are installed)."""
    names = {s.name for s in built}
    return {s.name: set(s.recipe.requires_recipes) & names for s in built}


def job_share(compiler: Compiler, built: list[Step]) -> int:
    """The ``jobs`` each build gets when ``built`` are built side by side."""
    return max(1, compiler.jobs // max(1, min(compiler.jobs, _width(_needs(built)))))


def _build(compiler: Compiler, step: Step, jobs: int, progress: BuildProgress) -> None:
    folder = reproducible.build_folder(step.place, step.name, step.key)
    with reproducible.hold(step.place), reproducible.hold(folder):  # another run building it waits
        _build_held(compiler, step, jobs, progress)


def work_dir(compiler: Compiler, step: Step) -> Path:
    """The folder a package is built in (its source, build and staging folders)."""
    if step.source.kind == "path":
        # a local tree under development: its build folder is kept (per prefix and package)
        # so the next build recompiles only what changed; the copy is mirrored, not redone
        return dev_dir(compiler, step)
    # the same folder in every run (beside the build prefix): the flags a build sees, and
    # may record, are the same; in pmpm's cache when the build is in PREFIX
    fixed = reproducible.build_folder(step.place, step.name, step.key)
    return fixed or paths.build_dir() / f"{step.name}-{step.key[:12]}"


def _build_held(compiler: Compiler, step: Step, jobs: int, progress: BuildProgress) -> None:
    # the builder, packer and tests, with the archive and staging modules they use: measured
    # on the binary-cache path (a run taking every package from the cache does not load them)
    from pmpm.build.execute import build_package

    recipe = step.recipe
    host = compiler.host(step.target)
    place = step.place
    local = step.source.kind == "path"
    work = work_dir(compiler, step)
    if compiler.fresh or not local:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    flags = compiler.flags(host, place, work)  # the build folder mapped out of what is compiled
    log = log_path(step.name)
    done = None
    try:
        progress.phase(step.name, "fetch", log)
        tree = compiler.sources.unpack(step.fetched, work / "src")
        if local:
            # the user's working copy: builds never write into it
            manifest = work / "mirrored.json"
            previous = set(json.loads(manifest.read_text())) if manifest.is_file() else set()
            mirrored = mirror_tree(tree, work / "src", _untracked, previous)
            atomic_write_text(manifest, json.dumps(sorted(mirrored)))
            tree = work / "src"
        builder = registry.get(recipe.system, where=recipe.origin) if recipe.system else registry.detect(tree)
        started = f"building {step.name} {recipe.version} ({builder.name}, target {host.target})"
        progress.started(step.name, started)
        with compiler.prefix_lock:
            installed = conda.installed_records(compiler.prefix)
        depends = _depends(compiler, step, installed)
        python = compiler.python_exe()
        if place is not None:
            progress.phase(step.name, "prepare")  # the build prefix: what the package requires
            _host_env(compiler, step, place, installed)
            if (place / "bin" / "python").exists():
                python = place / "bin" / "python"
        epoch = source_date_epoch(compiler.sources, step.fetched)
        env = build_env(compiler, host, flags, recipe.env, jobs=jobs, where=place, python=python, epoch=epoch)
        result = build_package(
            name=step.name,
            version=recipe.version,
            build_string=step.build_string,
            source_tree=tree,
            work=work,
            prefix=place or compiler.prefix,
            builder=builder,
            flags=flags,
            env=env,
            args=recipe.args,
            script=recipe.script,
            jobs=jobs,
            python=python,
            depends=depends,
            out_dir=build_channel() / conda.host_subdir(),
            # no recipe file path: it is no input, and would make copies of a project differ
            extra={"pmpm": {"key": step.key, "inputs": step.inputs.as_dict()}},
            incremental=local,
            log=log,
            phase=lambda name: progress.phase(step.name, name),
            # its rendered recipe and build inputs, under info/: functions of the key alone
            info=provenance.info_files(recipe, step.inputs, lambda value: compiler.neutral(value, place)),
        )
        if recipe.test_commands and compiler.spec.pmpm.tests:
            progress.phase(step.name, "test")
            _test(compiler, step, result, env, work / "build")
        provenance.keep_log(result.package, result.log)  # complete: the tests' output is in it
        progress.phase(step.name, "link")  # into PREFIX, by the installer
        with compiler.prefix_lock:  # one installer at a time; each sees the others' results
            _install(compiler, [result.package], conda.installed_records(compiler.prefix))
        _keep_inputs(compiler, step, result.package)
        if place is not None:
            compiler.cache.store(result.package)
        done = f"installed {step.name} {recipe.version} ({result.files} files; log: {result.log})"
    finally:
        progress.finished(step.name, done)  # None: failed (the error says how)
        if compiler.keep_build:
            progress.say(f"kept the build folder of {step.name}: {work}")
        elif not local:  # a local tree's build folder stays for the next, incremental build
            shutil.rmtree(work, ignore_errors=True)
        if place is not None:
            shutil.rmtree(place, ignore_errors=True)


def _test(compiler: Compiler, step: Step, result, env: dict[str, str], cwd: Path) -> None:
    """Run the recipe's tests with the package installed beside what it requires: in its
    build prefix (conda_install mode: it holds the requirements, and ``{{ prefix }}`` names
    it), installed there from the fresh ``.conda`` by the conda installer; in
    system_install mode, where the stacks are the requirements, in the staged files."""
    test_prefix = result.staged
    if step.place is not None:
        test_prefix = step.place
        _install(compiler, [result.package], conda.installed_records(test_prefix), prefix=test_prefix)
    from pmpm.build.execute import run_tests  # loaded already by _build_held

    run_tests(
        step.recipe.test_commands,
        test_prefix=test_prefix,
        built_for=step.place or compiler.prefix,
        env=env,
        cwd=cwd,
        log=result.log,
        package=step.name,
    )


def _keep_inputs(compiler: Compiler, step: Step, package: Path) -> None:
    """The build's inputs beside the installed package, and its build log (kept beside
    ``package`` in the build channel) in PREFIX: both live as long as the package does."""
    provenance.install_log(compiler.prefix, package)
    atomic_write_text(
        paths.build_inputs_file(compiler.prefix, step.name),
        json.dumps(
            {
                **step.inputs.as_dict(),
                "record": compiler.neutral(build_details(step, compiler.book), step.place),
            },
            indent=1,
            sort_keys=True,
        ),
    )


def _take_from_cache(compiler: Compiler, steps: list[Step]) -> None:
    packages = [step.cached for step in steps if step.cached is not None]
    with compiler.prefix_lock:
        _install(compiler, packages, conda.installed_records(compiler.prefix))
    for step in steps:
        assert step.cached is not None
        compiler.cache.used(step.cached)
        _keep_inputs(compiler, step, step.cached)
        compiler.say(f"installed {step.name} {step.recipe.version} from the binary cache ({step.cached})")


def _host_env(compiler: Compiler, step: Step, place: Path, installed: list) -> None:
    """The build prefix holds what the package requires (and what that requires), linked
    from the package cache as in PREFIX, and nothing else: a fresh one per build."""

    needed = host_needs(step, installed)
    check_build_prefix(needed, place, step.name, step.where)  # before the installer's vaguer error
    shutil.rmtree(place, ignore_errors=True)
    place.mkdir(parents=True)
    if needed:
        conda.install(needed, place, installed=[], requested=[])


def host_needs(step: Step, installed: list) -> list:
    """The records a build prefix holds: what the package requires, and what that requires."""
    return conda.dependency_closure([*step.inputs.conda, *step.inputs.recipes], installed)


def dev_dir(compiler: Compiler, step: Step) -> Path:
    """A local tree's kept build folder: per prefix and package, and per target, flags and
    compilers -- make and friends rebuild by file times, so objects compiled for another
    target (a stack moved between targets) must not be reused."""
    inputs = step.inputs
    tuned = {"target": step.target, "flags": inputs.flags, "compilers": inputs.compilers}
    name = step.name
    return paths.dev_dir() / f"{name}-{digest({'prefix': str(compiler.prefix), 'name': name, **tuned})[:12]}"


def _depends(compiler: Compiler, step: Step, installed: list) -> list[str]:
    by_name = {r.name.normalized: r for r in installed}
    depends = []
    # a package depends on what the installer can see in the same prefix: in system_install
    # mode the conda stack is another prefix, and its packages are recorded in the inputs
    for dep in [*([] if compiler.system else step.inputs.conda), *step.inputs.recipes]:
        record = by_name.get(dep)
        if record is not None:
            depends.append(f"{dep} =={record.version} {record.build}")
    return depends


def _install(compiler: Compiler, packages: list[Path], installed: list, prefix: Path | None = None) -> None:
    """Install package files into PREFIX (or ``prefix``) in one transaction, replacing
    same-named ones."""

    async def read():
        return [await RepoDataRecord.from_package_archive(p) for p in packages]

    records = conda.run_coroutine(read(), settle=False)  # the install right after settles
    names = {r.name.normalized for r in records}
    keep = [r for r in installed if r.name.normalized not in names]
    asked = [request.name for request in compiler.spec.pmpm.packages]  # their records carry it
    conda.install(keep + records, prefix or compiler.prefix, installed=installed, requested=asked)


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
            provenance.drop_logs(prefix, name)
    return sorted(drop)
