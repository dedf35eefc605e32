"""Slurm through its own commands: submit (``sbatch``), watch (``squeue``, ``scontrol``), cancel
(``scancel``). No scheduler of our own and no Slurm library: the commands are the interface every
site supports, whatever its Slurm version, as in EasyBuild's ``--job`` and Snakemake's executor.

Every command runs as an argument list. One ``squeue`` call polls all of a run's jobs (cheap for
the controller, which matters on a site with thousands of jobs); a job's exit code and log are
asked of ``scontrol`` once, when it has finished. A job that has already left the controller's
memory (``MinJobAge``) is asked of ``sacct`` where the site keeps accounting.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from pmpm.cluster.nodecheck import EXIT_WRONG_NODE
from pmpm.cluster.settings import SlurmSettings
from pmpm.errors import PmpmError

#: states after which a job never runs again (``UNKNOWN``: it left Slurm before we saw it end)
FINISHED = frozenset(
    {
        "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
        "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED", "UNKNOWN",
    }
)  # fmt: skip
#: why a finished job did not succeed, in words for the user
_WHY = {
    "CANCELLED": "was cancelled",
    "TIMEOUT": "ran out of its time limit (raise slurm.time)",
    "NODE_FAIL": "lost its node (the node failed)",
    "OUT_OF_MEMORY": "ran out of memory (raise slurm.memory)",
    "PREEMPTED": "was preempted by another job",
    "BOOT_FAIL": "could not start: its node failed to boot",
    "DEADLINE": "missed its deadline",
    "UNKNOWN": "left Slurm's queue before its end was seen (no accounting to ask)",
}
COMMAND_TIMEOUT = 120  # seconds; Slurm's clients retry an unreachable controller for a while


@dataclass(frozen=True)
class JobStatus:
    """What Slurm says about one job; ``node`` is ``None`` until it is placed."""

    job_id: str
    state: str
    node: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    log: Path | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED" and not self.exit_code


def sbatch_args(
    settings: SlurmSettings,
    *,
    name: str,
    log: Path,
    target: str | None = None,
    workdir: Path | None = None,
) -> list[str]:
    """``sbatch``'s options for one job (the script comes after them): the site's settings, the
    nodes of ``target``, and one log for stdout and stderr."""
    place = settings.placement(target) if target is not None else None
    partition = (place.partition if place else None) or settings.partition
    args = ["--parsable", f"--job-name={name}", f"--output={log}"]
    if workdir is not None:
        args.append(f"--chdir={workdir}")
    for option, value in (
        ("--partition", partition),
        ("--account", settings.account),
        ("--time", settings.time),
        ("--cpus-per-task", settings.cpus),
        ("--mem", settings.memory),
        ("--constraint", place.constraint if place else None),
    ):
        if value is not None:
            args.append(f"{option}={value}")
    return [*args, *settings.extra]


def job_script(commands: Sequence[Sequence[str]], env: Mapping[str, str] | None = None) -> str:
    """A batch script running ``commands`` (argument lists, each quoted) in order, stopping at the
    first failure, with its exit code: what ``sbatch`` needs, since it takes a script."""
    lines = ["#!/bin/sh", "set -e"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in (env or {}).items()]
    lines += [shlex.join(command) for command in commands]
    return "\n".join(lines) + "\n"


def failure(status: JobStatus, what: str) -> PmpmError:
    """The error for a job that did not succeed: ``what`` (e.g. "the build for target zen3"),
    job id, node, state in words, and its log."""
    node = f" on node {status.node}" if status.node else ""
    if status.exit_code == EXIT_WRONG_NODE:
        why = "was refused by the node check: the node's CPU cannot run its target (see the log)"
    elif status.state in ("FAILED", "COMPLETED"):
        why = f"failed with exit code {status.exit_code}"
        if status.signal:
            why += f" (signal {status.signal})"
    else:
        why = _WHY.get(status.state, f"ended as {status.state}")
    if status.reason and status.reason != "NonZeroExitCode":
        why += f" [{status.reason}]"
    return PmpmError(
        f"{what}: Slurm job {status.job_id}{node} {why}; nothing was installed",
        hint="read the job's log; `scontrol show job " + status.job_id + "` tells more while Slurm "
        "still knows the job",
        log=status.log,
    )


class Slurm:
    """Slurm's client commands with one environment (``SLURM_CONF`` and all) for every call."""

    def __init__(self, env: Mapping[str, str] | None = None, poll: float = 1.0) -> None:
        self.env = dict(os.environ if env is None else env)
        self.poll = poll

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        if shutil.which(argv[0], path=self.env.get("PATH")) is None:
            raise PmpmError(
                f"Slurm's client commands are missing: `{argv[0]}` is not on PATH",
                hint="install them (Debian/Ubuntu: `apt-get install slurm-client`; RHEL: `slurm`) or "
                "load the site's Slurm module; without Slurm, build here without --slurm",
            )
        try:
            done = subprocess.run(
                list(argv), env=self.env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
            )
        except subprocess.TimeoutExpired as exc:
            raise PmpmError(
                f"`{shlex.join(argv)}` got no answer in {COMMAND_TIMEOUT} s",
                hint="is slurmctld up? `scontrol ping` tells; SLURM_CONF names the cluster's slurm.conf",
            ) from exc
        if check and done.returncode != 0:
            raise PmpmError(
                f"`{shlex.join(argv)}` failed: {done.stderr.strip() or done.stdout.strip()}",
                hint="Slurm's own message above says why; `sinfo` lists the partitions and nodes",
            )
        return done

    def submit(
        self,
        script: Path,
        settings: SlurmSettings,
        *,
        name: str,
        log: Path,
        target: str | None = None,
        workdir: Path | None = None,
    ) -> str:
        """Submit ``script`` and return its job id (``sbatch --parsable`` prints ``id[;cluster]``)."""
        args = sbatch_args(settings, name=name, log=log, target=target, workdir=workdir)
        out = self._run("sbatch", *args, str(script)).stdout.strip()
        job_id = out.split(";", 1)[0].strip()
        if not job_id.isdigit():
            raise PmpmError(f"sbatch printed {out!r} where a job id was expected")
        return job_id

    def cancel(self, job_ids: Iterable[str]) -> None:
        """``scancel`` the jobs (already finished ones are no error)."""
        ids = list(job_ids)
        if ids:
            self._run("scancel", *ids, check=False)

    def statuses(self, job_ids: Iterable[str]) -> dict[str, JobStatus]:
        """Each job's status now: one ``squeue`` for all; ``scontrol`` once a job has finished."""
        ids = list(job_ids)
        found: dict[str, JobStatus] = {}
        if not ids:
            return found
        done = self._run("squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%N|%r", check=False)
        if done.returncode != 0 and "Invalid job id" not in done.stderr:
            raise PmpmError(
                f"`squeue` failed: {done.stderr.strip()}", hint="`scontrol ping` tells if slurmctld is up"
            )
        for line in done.stdout.splitlines():
            job_id, state, node, reason = [*line.split("|"), "", "", ""][:4]
            if job_id in ids and state:
                why = reason if reason not in ("", "None") else None
                found[job_id] = JobStatus(job_id, state.split()[0], node or None, why)
        for job_id in ids:
            status = found.get(job_id)
            if status is None:
                found[job_id] = self._accounted(job_id)
            elif status.finished:
                found[job_id] = self._details(status)
        return found

    def _details(self, status: JobStatus) -> JobStatus:
        """A finished job's exit code, signal and log, from ``scontrol show job -o``."""
        out = self._run("scontrol", "show", "job", "-o", status.job_id, check=False).stdout
        fields = dict(part.split("=", 1) for part in out.split() if "=" in part)
        code, signal = _exit_code(fields.get("ExitCode", ""))
        log = fields.get("StdOut")
        return replace(status, exit_code=code, signal=signal, log=Path(log) if log else None)

    def _accounted(self, job_id: str) -> JobStatus:
        """A job the controller has forgotten, from ``sacct`` when the site keeps accounting."""
        if shutil.which("sacct", path=self.env.get("PATH")) is not None:
            done = self._run(
                "sacct", "-n", "-P", "-X", "-j", job_id, "-o", "State,ExitCode,NodeList", check=False
            )
            line = done.stdout.strip().splitlines()[:1] if done.returncode == 0 else []
            if line and line[0].count("|") == 2:
                state, exit_code, node = line[0].split("|")
                code, signal = _exit_code(exit_code)
                return JobStatus(job_id, state.split()[0], node or None, None, code, signal)
        return JobStatus(job_id, "UNKNOWN")

    def wait(
        self,
        job_ids: Iterable[str],
        on_change: Callable[[JobStatus], None] | None = None,
        logs: Mapping[str, Path] | None = None,
    ) -> dict[str, JobStatus]:
        """Poll until every job has finished; ``on_change`` hears each new state or node (live
        progress). Interrupted (Ctrl-C) or failing, it cancels the jobs still running and re-raises:
        a run never leaves its jobs behind. ``logs`` fills in the log of jobs Slurm forgot."""
        ids = list(job_ids)
        seen: dict[str, JobStatus] = {}
        try:
            while True:
                running = [i for i in ids if i not in seen or not seen[i].finished]
                for job_id, status in self.statuses(running).items():
                    if status.log is None and logs and job_id in logs:
                        status = replace(status, log=logs[job_id])
                    before = seen.get(job_id)
                    seen[job_id] = status
                    moved = before is None or (before.state, before.node) != (status.state, status.node)
                    if on_change and moved:
                        on_change(status)
                if all(seen[i].finished for i in ids):
                    return {i: seen[i] for i in ids}
                time.sleep(self.poll)
        except BaseException:
            with contextlib.suppress(PmpmError, OSError):
                self.cancel(i for i in ids if i not in seen or not seen[i].finished)
            raise


def _exit_code(text: str) -> tuple[int | None, int | None]:
    """Slurm's ``ExitCode=CODE:SIGNAL`` -> (code, signal or None)."""
    code, _, signal = text.partition(":")
    if not code.isdigit():
        return None, None
    return int(code), (int(signal) if signal.isdigit() and int(signal) else None)
