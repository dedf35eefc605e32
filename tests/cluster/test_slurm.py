"""The Slurm driver against a real Slurm: a controller and two nodes on loopback (``slurmhelp``).

Node n1 advertises ``x86_64_v3``, n2 ``x86_64_v4,icelake``; both run on this machine's CPU, so a
job can check where ``--constraint`` sent it (``$SLURMD_NODENAME``) but not run another CPU's code.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from pmpm.cluster.nodecheck import EXIT_WRONG_NODE
from pmpm.cluster.settings import SlurmSettings
from pmpm.cluster.slurm import JobStatus, Slurm, failure, job_script
from pmpm.errors import PmpmError
from pmpm.host.target import host_microarchitecture
from tests.slurmhelp import LoopbackSlurm


def _submit(
    slurm: Slurm,
    folder: Path,
    name: str,
    commands: list[list[str]],
    settings: SlurmSettings | None = None,
    target: str | None = None,
) -> tuple[str, Path]:
    """Write a job script running ``commands``, submit it; its job id and log."""
    script = folder / f"{name}.sh"
    script.write_text(job_script(commands))
    log = folder / f"{name}.log"
    job_id = slurm.submit(script, settings or SlurmSettings(), name=name, log=log, target=target)
    return job_id, log


def _until(slurm: Slurm, job_id: str, state: str) -> JobStatus:
    """Poll until the job is in ``state`` (a minute at most)."""
    for _ in range(300):
        status = slurm.statuses([job_id])[job_id]
        if status.state == state:
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached {state}: {status}")


def _nodecheck(target: str) -> list[str]:
    return [sys.executable, "-m", "pmpm.cluster.nodecheck", target]


def _foreign_target() -> str:
    """A target of another CPU family than this machine's: no node here can run it."""
    return "a64fx" if host_microarchitecture().family.name == "x86_64" else "x86_64_v4"


def test_constraint_routes_each_target_to_its_node(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    settings = SlurmSettings.from_mapping(
        {"cpus": 1, "targets": {"x86_64_v3": "x86_64_v3", "x86_64_v4": "icelake"}}
    )
    slurm = Slurm(slurm_cluster.env, poll=0.3)
    jobs = {
        target: _submit(slurm, tmp_path, target, [_nodecheck(target)], settings, target)
        for target in ("x86_64_v3", "x86_64_v4")
    }
    heard: list[JobStatus] = []
    final = slurm.wait([job_id for job_id, _ in jobs.values()], on_change=heard.append)

    for target, node in (("x86_64_v3", "n1"), ("x86_64_v4", "n2")):
        job_id, log = jobs[target]
        status = final[job_id]
        assert status.ok, (status, log.read_text())
        assert status.node == node
        assert status.log == log
        assert f"node {node} can run target {target}" in log.read_text()
        assert [s.state for s in heard if s.job_id == job_id][-1] == "COMPLETED"
        assert any(s.node == node for s in heard if s.job_id == job_id)


def test_failing_job_names_target_job_node_and_log(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    slurm = Slurm(slurm_cluster.env, poll=0.3)
    job_id, log = _submit(slurm, tmp_path, "broken", [["sh", "-c", "echo compiling; exit 7"]])
    status = slurm.wait([job_id])[job_id]

    assert (status.state, status.exit_code, status.ok) == ("FAILED", 7, False)
    assert status.log == log and "compiling" in log.read_text()
    error = failure(status, "the build for target zen3")
    text = str(error)
    assert "the build for target zen3" in text and f"Slurm job {job_id} on node {status.node}" in text
    assert "exit code 7" in text and "nothing was installed" in text
    assert error.log == log


def test_interrupted_wait_cancels_the_jobs(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """Ctrl-C while waiting (here: raised from the progress callback) cancels what was submitted."""
    slurm = Slurm(slurm_cluster.env, poll=0.3)
    job_id, _ = _submit(slurm, tmp_path, "long", [["sleep", "300"]])

    def interrupt_once_running(status: JobStatus) -> None:
        if status.state == "RUNNING":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        slurm.wait([job_id], on_change=interrupt_once_running)
    status = slurm.wait([job_id])[job_id]
    assert status.state == "CANCELLED" and not status.ok
    assert "was cancelled" in str(failure(status, "the build for target x86_64_v3"))


def test_cancel_a_pending_and_a_running_job(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    slurm = Slurm(slurm_cluster.env, poll=0.3)
    running, _ = _submit(slurm, tmp_path, "running", [["sleep", "300"]])
    later = SlurmSettings.from_mapping({"extra": ["--begin=now+3600"]})  # pending for an hour
    pending, _ = _submit(slurm, tmp_path, "pending", [["true"]], later)
    assert _until(slurm, running, "RUNNING").node in ("n1", "n2")
    assert _until(slurm, pending, "PENDING").reason == "BeginTime"
    slurm.cancel([running, pending])
    final = slurm.wait([running, pending])
    assert final[running].state == final[pending].state == "CANCELLED"
    assert final[pending].node is None


def test_sbatch_refusal_is_a_user_error(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """A feature no node has: sbatch refuses at once and its own words reach the user."""
    slurm = Slurm(slurm_cluster.env, poll=0.3)
    settings = SlurmSettings.from_mapping({"targets": {"zen4": "no_such_feature"}})
    with pytest.raises(PmpmError, match="Invalid feature specification"):
        _submit(slurm, tmp_path, "unplaceable", [["true"]], settings, "zen4")


def test_node_check_refuses_a_target_the_node_cannot_run(
    slurm_cluster: LoopbackSlurm, tmp_path: Path
) -> None:
    """The feature map lies: it sends a foreign CPU's target to n2; the job refuses to build."""
    foreign = _foreign_target()
    settings = SlurmSettings.from_mapping({"targets": {foreign: "icelake"}})
    slurm = Slurm(slurm_cluster.env, poll=0.3)
    job_id, log = _submit(
        slurm, tmp_path, "liar", [_nodecheck(foreign), ["echo", "built"]], settings, foreign
    )
    status = slurm.wait([job_id])[job_id]

    assert (status.state, status.node, status.exit_code) == ("FAILED", "n2", EXIT_WRONG_NODE)
    text = log.read_text()
    cpu = host_microarchitecture().name
    assert f"node n2 cannot build for target {foreign}: its CPU is {cpu}" in text
    assert "built" not in text
    assert "refused by the node check" in str(failure(status, f"the build for target {foreign}"))


def test_several_jobs_run_at_the_same_time(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """Each job waits for all the others to have started: they finish only if they ran together."""
    count = 3
    flags = tmp_path / "started"
    flags.mkdir()
    rendezvous = (
        f'touch {flags}/"$SLURM_JOB_ID"; n=0; '
        f'while [ "$(ls {flags} | wc -l)" -lt {count} ]; do '
        'n=$((n+1)); [ $n -lt 600 ] || { echo "alone"; exit 1; }; sleep 0.1; done; echo together'
    )
    slurm = Slurm(slurm_cluster.env, poll=0.3)
    settings = SlurmSettings.from_mapping({"cpus": 1})
    jobs = [_submit(slurm, tmp_path, f"p{i}", [["sh", "-c", rendezvous]], settings) for i in range(count)]
    final = slurm.wait([job_id for job_id, _ in jobs])

    for job_id, log in jobs:
        assert final[job_id].ok, (final[job_id], log.read_text())
        assert "together" in log.read_text()


@pytest.mark.slow
def test_a_job_slurm_forgot_is_not_taken_for_a_success(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """Past ``MinJobAge`` the controller forgets a job; without accounting (``sacct``) its end is
    unknown, and unknown is a failure: nothing gets installed from a job nobody saw succeed."""
    slurm = Slurm(slurm_cluster.env, poll=0.3)
    job_id, log = _submit(slurm, tmp_path, "forgotten", [["true"]])
    assert slurm.wait([job_id])[job_id].ok
    status = _until(slurm, job_id, "UNKNOWN")
    assert not status.ok and status.finished
    assert slurm.wait([job_id], logs={job_id: log})[job_id].log == log
    assert "left Slurm's queue before its end was seen" in str(failure(status, "the build for target zen3"))


@pytest.mark.slow
def test_timed_out_job(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """Slurm's time limits are whole minutes: a 1-minute job that sleeps on ends as TIMEOUT."""
    settings = SlurmSettings.from_mapping({"time": 1})
    slurm = Slurm(slurm_cluster.env, poll=1.0)
    job_id, _log = _submit(slurm, tmp_path, "slowpoke", [["sleep", "600"]], settings)
    status = slurm.wait([job_id])[job_id]

    assert status.state == "TIMEOUT" and not status.ok
    assert "ran out of its time limit" in str(failure(status, "the build for target x86_64_v3"))


def test_missing_slurm_commands_say_what_to_install(tmp_path: Path) -> None:
    slurm = Slurm({"PATH": str(tmp_path)})
    script = tmp_path / "job.sh"
    script.write_text(job_script([["true"]]))
    with pytest.raises(PmpmError) as caught:
        slurm.submit(script, SlurmSettings(), name="x", log=tmp_path / "x.log")
    assert "Slurm's client commands are missing" in caught.value.message
    assert "sbatch" in caught.value.message and "slurm-client" in str(caught.value.hint)
