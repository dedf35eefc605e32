"""``--slurm``: each target's compiled packages built by a Slurm job on a node of that target.

The run goes as without ``--slurm`` (one transaction: locks, journal, the conda stage) up to
its build stage. There, instead of compiling on the submitting host, it submits one ``sbatch``
job per target at once (``--constraint``/partition from ``_pmpm.slurm.targets``, and the
block's partition, account, time, cpus, memory and extra arguments) and waits for all of them;
a target found with nothing to compile before then gets no job. Each job
(:mod:`pmpm.cluster.build_job`) checks its node can run its target, then plans and builds that
target's stack as this run would, as its delegate (this run holds the locks and the journal).
Its builds also land in pmpm's build channel, the binary cache. Then this run plans every
stack again: each package must be up to date now, or the run stops naming the package, the
target and the inputs in which the node's build and this host's plan differ (another compiler
on PATH, a conda package solved differently) rather than compiling on the login node after all.

Why delegates, not a cache the run installs from: system_install's stacks, and each stack of a
conda_install with several targets, are built in the prefix they are installed in (that path is
part of their build key), so only a build made for that very prefix can serve them.

**The stacks and pmpm's cache folder must be on a filesystem the submitting host and the nodes
share** (a project or scratch space, not a node-local ``/tmp``), as the environment itself must
be for the nodes to use it; on one machine they trivially are.

While the jobs run, each change of a job's state is said (id, state, node; the log when it
ends). A failed, cancelled, timed-out or killed job stops the run with its target, job id, node
and log, after cancelling the other jobs and waiting for them to end; the journal then puts
every stack back, so nothing is installed. Ctrl-C cancels the jobs this run submitted, says so,
and the stacks are put back the same way. Logs are kept (``PMPM_LOG_DIR``/slurm).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pmpm import paths
from pmpm.build.plan import stored_inputs
from pmpm.cluster.settings import SlurmSettings
from pmpm.cluster.slurm import JobStatus, Slurm, failure, job_script
from pmpm.conda import engine as conda
from pmpm.errors import PmpmError, combined
from pmpm.host.detect import ALLOW_FOREIGN, resolve_target
from pmpm.spec.targets import targets_for

if TYPE_CHECKING:
    from pmpm.build.compile_stage import Compiler
    from pmpm.build.plan import BuildPlan
    from pmpm.pipeline.types import Loaded, Say

#: how long cancelled jobs get to end before the run puts the stacks back anyway (seconds)
SETTLE_TIMEOUT = 120.0


@dataclass(frozen=True)
class Job:
    """One target's build job: its stack in the run's layout and its files."""

    target: str
    stack: Path
    folder: Path
    job_id: str = ""

    def file(self, suffix: str) -> Path:
        return self.folder / f"{self.target}.{suffix}"

    @property
    def log(self) -> Path:
        return self.file("log")


@dataclass
class SlurmRun:
    """A run's Slurm builds: started by :func:`start`, submitted at its first build stage."""

    loaded: Loaded
    settings: SlurmSettings
    slurm: Slurm
    jobs: dict[str, Job] = field(default_factory=dict)  # job id -> job
    finished: dict[str, JobStatus] = field(default_factory=dict)
    idle: set[Path] = field(default_factory=set)  # stacks found with nothing to compile: no job

    @property
    def stacks(self) -> dict[Path, str]:
        return {stack: target for target, stack in targets_of(self.loaded)}


_RUN: SlurmRun | None = None


class _JobFailed(Exception):
    def __init__(self, status: JobStatus) -> None:
        self.status = status


def targets_of(loaded: Loaded) -> list[tuple[str, Path]]:
    """Each target with its compiled stack: the layout's targets, or the env file's one."""
    layout = loaded.layout
    if layout.targets:
        return [(t, layout.stack(t)) for t in layout.targets]

    return [(str(resolve_target(_one_target(loaded)).name), layout.compile)]


def _one_target(loaded: Loaded) -> str:
    """The target of a one-stack layout: `targets: [one]` (or `--targets one`), else `target`."""
    chosen = targets_for(loaded.spec.pmpm, loaded.opts.targets)
    return chosen[0] if len(chosen) == 1 else loaded.spec.pmpm.target


def start(loaded: Loaded, say: Say, slurm: Slurm | None = None) -> None:
    """Check that ``--slurm`` can work for this run, before anything changes; its jobs are
    submitted when the run reaches its build stage (:func:`delegate`)."""
    global _RUN
    _RUN = None
    opts, spec = loaded.opts, loaded.spec
    if opts.fresh or opts.rebuild:
        raise PmpmError(
            "--slurm cannot be combined with --fresh or --rebuild yet",
            hint="drop --fresh/--rebuild, or run without --slurm",
        )
    if not loaded.layout.targets and _one_target(loaded).lower() in ("host", "native"):
        raise PmpmError(
            f"--slurm needs the compute nodes' target named, but {spec.path} builds for `host` "
            "(this machine)",
            hint="set `_pmpm: {target: NAME}` or `targets: [...]` (e.g. x86_64_v3), or pass --targets",
        )
    if not _have("sbatch"):
        raise PmpmError(
            "--slurm needs Slurm's client commands, and `sbatch` is not on PATH",
            hint="install them (Debian/Ubuntu: `apt-get install slurm-client`; RHEL: `slurm`) or load "
            "the site's Slurm module; without Slurm, build here without --slurm",
        )
    if not spec.pmpm.packages:
        say("--slurm: the env file lists no packages to compile, so no jobs are needed")
        return
    # this host plans the builds but never runs them: targets its own CPU cannot run are fine
    # here, and each job's node check refuses a node that cannot
    os.environ.setdefault(ALLOW_FOREIGN, "1")
    settings = spec.pmpm.slurm or SlurmSettings()
    if settings.targets:
        for target, _ in targets_of(loaded):
            settings.placement(target)  # a target without nodes: said now, not after the solve
    _RUN = SlurmRun(loaded, settings, slurm or Slurm())


def _have(program: str) -> bool:
    return shutil.which(program) is not None


def delegate(compiler: Compiler, prefix: Path, plan: BuildPlan, say: Say) -> BuildPlan:
    """The build stage of ``prefix`` under ``--slurm``: the first call whose plan compiles
    something submits a job for each target not already found with nothing to compile, and
    waits for them; each call then returns ``prefix``'s plan made again, in which every
    package is up to date (or raises, naming what differs). A plan that compiles nothing
    (up to date, or from the binary cache) before any job: itself, with no job for its
    target. Without a Slurm run for this compiler's env file: ``plan`` itself."""
    run, stack = _RUN, Path(prefix)
    stacks = run.stacks if run is not None else {}
    if run is None or compiler.spec is not run.loaded.spec or stack not in stacks:
        return plan
    if not run.finished and not any(step.compiles for step in plan.steps):
        # nothing for a node to do: no job (and no wait in the queue) for this stack
        run.idle.add(stack)
        say(f"slurm: target {stacks[stack]} has nothing to compile; no job submitted")
        return plan
    if not run.finished:
        _submit_and_wait(run, say)

    again = compiler.plan(conda.installed_records(stack), stacks_changed=True)
    job = _check(run, stack, again)
    node = run.finished[job.job_id].node
    say(f"target {job.target}: {len(again)} compiled packages built by Slurm job {job.job_id} on {node}")
    return again


def _submit_and_wait(run: SlurmRun, say: Say) -> None:
    loaded, settings, slurm = run.loaded, run.settings, run.slurm
    from pmpm.cluster.build_job import request  # build_job imports the pipeline, which imports this module

    run_id = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    folder = paths.log_dir() / "slurm" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    opts = loaded.opts
    options = {
        "offline": opts.offline,
        "channel_alias": opts.channel_alias,
        "jobs": settings.cpus or opts.jobs,
        "keep_build": opts.keep_build,
        "targets": opts.targets,
        "backend": opts.backend,
    }
    env = {"PMPM_CACHE_DIR": str(paths.cache_root()), "PMPM_LOG_DIR": str(paths.log_dir())}
    try:
        for target, stack in targets_of(loaded):
            if stack in run.idle:
                continue
            job = Job(target, stack, folder)
            job.file("json").write_text(request(target, loaded.layout, Path(opts.file).absolute(), options))
            command = [sys.executable, "-m", "pmpm.cluster.build_job", str(job.file("json"))]
            job.file("sh").write_text(job_script([command], env=env))
            job_id = slurm.submit(
                job.file("sh"),
                settings,
                name=f"pmpm-{target}",
                log=job.log,
                target=target if settings.targets else None,
                workdir=folder,
            )
            run.jobs[job_id] = Job(target, stack, folder, job_id)
            say(f"slurm: submitted job {job_id} for target {target} (log: {job.log})")
        run.finished = slurm.wait(list(run.jobs), on_change=lambda s: _show(s, run, say))
    except KeyboardInterrupt:
        _settle(run)
        if run.jobs:
            say(f"interrupted: cancelled this run's Slurm jobs {', '.join(run.jobs)}; nothing was installed")
        raise
    except _JobFailed as failed:
        status = failed.status
        others = _settle(run, but=status.job_id)
        error = failure(status, f"the build for target {run.jobs[status.job_id].target}")
        if others:
            error.message += f" (this run's other jobs were cancelled: {', '.join(others)})"
        raise error from None
    except BaseException:
        _settle(run)
        raise
    say(f"slurm: {len(run.jobs)} build jobs done; logs kept in {folder}")


def _settle(run: SlurmRun, but: str = "") -> list[str]:
    """Cancel this run's jobs still queued or running and wait until they have ended (their
    processes may be writing a stack the journal is about to put back); the ids that ended
    cancelled."""
    slurm = run.slurm
    others = [i for i in run.jobs if i != but]
    try:
        slurm.cancel(others)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        final = slurm.statuses(others)
        while not all(s.finished for s in final.values()) and time.monotonic() < deadline:
            time.sleep(slurm.poll)
            final = slurm.statuses(others)
        return [i for i, s in final.items() if s.state == "CANCELLED"]
    except PmpmError:
        return others


def _show(status: JobStatus, run: SlurmRun, say: Say) -> None:
    """One line per change of a job: its target, id, state and node; the log when it ends."""
    job = run.jobs[status.job_id]
    node = f" on {status.node}" if status.node else ""
    why = f" ({status.reason})" if status.reason and status.state == "PENDING" else ""
    log = f"; log: {job.log}" if status.finished else ""
    say(f"slurm: job {status.job_id} (target {job.target}): {status.state.lower()}{node}{why}{log}")
    if status.finished and not status.ok:
        raise _JobFailed(status)


def _check(run: SlurmRun, prefix: Path, plan: BuildPlan) -> Job:
    """Every package of ``prefix``'s plan up to date after its job, or an error naming the
    package, the target and the inputs that differ between the node's build and this plan."""
    target = run.stacks[prefix]
    job = next(j for j in run.jobs.values() if j.stack == prefix)
    status = run.finished[job.job_id]
    problems: list[PmpmError] = []
    for step in plan.steps:
        if not step.compiles:
            continue
        theirs = stored_inputs(prefix, step.name)
        if theirs is None:
            why = "the job did not build it"
        else:
            differ = "; ".join(differences(theirs.as_dict(), step.inputs.as_dict()))
            why = f"the node's build key {theirs.key[:12]} differs from this host's {step.key[:12]}: {differ}"
        problems.append(
            PmpmError(
                f"{step.name} (target {target}) is not up to date after Slurm job {job.job_id} on node "
                f"{status.node}: {why}"
            )
        )
    if problems:
        error = combined(problems, "after the Slurm builds")
        error.hint = (
            "the nodes and this host must see the same compilers, conda packages and recipes; "
            "nothing was compiled here and nothing was installed"
        )
        error.log = job.log
        raise error
    return job


def differences(node: dict[str, Any], here: dict[str, Any], limit: int = 160) -> list[str]:
    """The inputs in which the node's build and this host's plan differ, with both values
    (``compilers.cc: node '...', here '...'``): what to make the same."""

    def short(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= limit else text[: limit - 3] + "..."

    found: list[str] = []
    for name in sorted({*node, *here}):
        a, b = node.get(name), here.get(name)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted({*a, *b}):
                if a.get(key) != b.get(key):
                    found.append(f"{name}.{key}: node {short(a.get(key))}, here {short(b.get(key))}")
        else:
            found.append(f"{name}: node {short(a)}, here {short(b)}")
    return found
