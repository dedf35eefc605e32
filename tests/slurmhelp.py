"""A real Slurm cluster on loopback for tests: one ``slurmctld`` and two ``slurmd`` "nodes".

Debian's Slurm runs entirely on 127.0.0.1 from a temp folder, with nothing changed in /etc (the
facts are in ``../shared/notes/slurm-on-one-machine.md``): config, state, spool, logs and pid
files all live under one folder, and every client call gets ``SLURM_CONF`` (without it clients
look the controller up in DNS). Both nodes run on this machine's CPU; their ``Features=`` differ
so tests can check that ``--constraint`` routes a job to the node that advertises it.

``auth/none`` + ``cred/none`` stand in for munge: nothing but loopback traffic ever happens.
The daemons are stopped with ``scontrol shutdown`` and then, if still there, by the PID recorded
at start, after checking that PID is still the process we started (PIDs wrap quickly here).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DAEMONS = ("slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
#: node name -> its ``Features=``: two nodes advertising different CPU targets
NODE_FEATURES: dict[str, tuple[str, ...]] = {
    "n1": ("x86_64_v3",),
    "n2": ("x86_64_v4", "icelake"),
}
START_TIMEOUT = 60.0


def missing_binaries() -> list[str]:
    """The Slurm programs this helper needs that are not installed (daemons live in sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])  # root's PATH may lack sbin
    return [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name, path=path) is None]


def skip_without_slurm() -> None:
    """Skip the calling test with the reason and the fix when Slurm is not installed."""
    missing = missing_binaries()
    if missing:
        pytest.skip(
            f"Slurm is not installed (missing {', '.join(missing)}): "
            "apt-get install --no-install-recommends slurmctld slurmd slurm-client munge"
        )


@dataclass
class Daemon:
    """A daemon this helper started: its PID and the start time the kernel gave that PID."""

    name: str
    proc: subprocess.Popen[bytes]
    start_ticks: str

    def still_ours(self) -> bool:
        """True while the PID names the very process we started (not a reused PID)."""
        return self.proc.poll() is None and _start_ticks(self.proc.pid) == self.start_ticks


@dataclass
class LoopbackSlurm:
    """A running loopback cluster: ``env`` is what every client call needs (``SLURM_CONF``)."""

    root: Path
    conf: Path
    nodes: Mapping[str, tuple[str, ...]]
    daemons: list[Daemon] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """This process's environment with ``SLURM_CONF`` pointing at this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def log(self, daemon: str) -> str:
        """A daemon's log (``slurmctld``, ``n1``, ``n2``), for failure messages."""
        path = self.root / "log" / f"{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else f"(no {path})"

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A Slurm client command against this cluster."""
        return subprocess.run(
            list(argv), env=self.env, capture_output=True, text=True, timeout=30, check=check
        )

    def node_states(self) -> dict[str, str]:
        """``sinfo``'s state of each node: ``idle``, ``alloc``, ``down``, ..."""
        out = self.run("sinfo", "-h", "-N", "-o", "%N %t", check=False).stdout
        return dict(line.split(None, 1) for line in out.splitlines() if " " in line)


def _start_ticks(pid: int) -> str:
    """Field 22 of ``/proc/PID/stat`` (start time since boot): with the PID, names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _free_ports(count: int) -> list[int]:
    """Ports nobody listens on now (slurmctld binds every address, so check them all)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write_conf(root: Path, nodes: Mapping[str, tuple[str, ...]] = NODE_FEATURES) -> Path:
    """slurm.conf for one controller and ``nodes`` on 127.0.0.1, everything under ``root``."""
    for sub in ("state", "log", "run", "spool"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in nodes:  # slurmd does not create its spool folder
        (root / "spool" / name).mkdir(exist_ok=True)
    ctld_port, *node_ports = _free_ports(1 + len(nodes))
    lines = [
        "ClusterName=pmpmtest",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        "SlurmUser=root",
        "AuthType=auth/none",
        "CredType=cred/none",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "ReturnToService=2",
        "CommunicationParameters=NoInAddrAny",
        "SlurmdParameters=config_overrides",  # both nodes share this machine's cores
        # batch jobs start at once instead of on ~3 s ticks; finished jobs leave after 5 s
        # (with the default 300 s, `sbatch --wait` backs off for up to 32 s)
        "SchedulerParameters=batch_sched_delay=0,bf_interval=1",
        "MinJobAge=5",
        "JobCompType=jobcomp/filetxt",
        f"JobCompLoc={root / 'log' / 'jobcomp.txt'}",
        "MpiDefault=none",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmctldPidFile={root / 'run' / 'slurmctld.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdSpoolDir={root / 'spool' / '%n'}",
        f"SlurmdPidFile={root / 'run' / 'slurmd-%n.pid'}",
        f"SlurmdLogFile={root / 'log' / '%n.log'}",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
    ]
    for (name, features), port in zip(nodes.items(), node_ports, strict=True):
        lines.append(
            f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} "
            f"CPUs=2 RealMemory=1000 Features={','.join(features)} State=UNKNOWN"
        )
    lines.append(f"PartitionName=debug Nodes={','.join(nodes)} Default=YES MaxTime=INFINITE State=UP")
    conf = root / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _start(name: str, argv: list[str], env: Mapping[str, str], log: Path) -> Daemon:
    """One daemon in the foreground, in its own session (a test's Ctrl-C does not reach it)."""
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    return Daemon(name, proc, _start_ticks(proc.pid))


def _stop(cluster: LoopbackSlurm) -> None:
    """Cancel the jobs left (a job outlives its slurmd), ``scontrol shutdown``, then
    SIGTERM/SIGKILL by recorded PID to the daemons still ours."""
    with contextlib.suppress(subprocess.SubprocessError, OSError):
        left = cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
        if left:
            cluster.run("scancel", *left, check=False)
            for _ in range(100):
                if not cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split():
                    break
                time.sleep(0.1)
        cluster.run("scontrol", "shutdown", check=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(d.still_ours() for d in cluster.daemons):
        time.sleep(0.1)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for daemon in cluster.daemons:
            if daemon.still_ours():
                os.kill(daemon.proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            for daemon in cluster.daemons:
                daemon.proc.wait(timeout=5)
    for daemon in cluster.daemons:  # reap, so no zombie keeps the PID
        with contextlib.suppress(subprocess.TimeoutExpired):
            daemon.proc.wait(timeout=1)


def _wait_idle(cluster: LoopbackSlurm) -> None:
    """Until every node is idle; fail with the daemons' logs when one exits or time runs out."""
    deadline = time.monotonic() + START_TIMEOUT
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = cluster.node_states()
        if set(states) == set(cluster.nodes) and all(s == "idle" for s in states.values()):
            return
        dead = [d.name for d in cluster.daemons if d.proc.poll() is not None]
        if dead:
            break
        time.sleep(0.2)
    logs = "\n".join(f"--- {name} ---\n{cluster.log(name)[-3000:]}" for name in ("slurmctld", *cluster.nodes))
    pytest.fail(f"loopback Slurm did not come up (node states {states}):\n{logs}")


@contextlib.contextmanager
def loopback_slurm(
    root: Path, nodes: Mapping[str, tuple[str, ...]] = NODE_FEATURES
) -> Iterator[LoopbackSlurm]:
    """Start a controller and ``nodes`` under ``root``, yield once all are idle, stop them after.

    Skips the test (with the fix) when Slurm is not installed; fails with the daemons' logs
    when the nodes do not come up.
    """
    skip_without_slurm()
    conf = write_conf(root, nodes)
    cluster = LoopbackSlurm(root, conf, nodes)
    env = cluster.env
    logs = root / "log"
    search = os.pathsep.join(["/usr/sbin", "/sbin", env.get("PATH", "")])
    slurmctld, slurmd = (shutil.which(name, path=search) or name for name in DAEMONS)
    try:
        cluster.daemons.append(
            _start("slurmctld", [slurmctld, "-D", "-f", str(conf)], env, logs / "slurmctld.out")
        )
        for name in nodes:
            argv = [slurmd, "-D", "-N", name, "-f", str(conf)]
            cluster.daemons.append(_start(name, argv, env, logs / f"{name}.out"))
        _wait_idle(cluster)
        yield cluster
    finally:
        _stop(cluster)
