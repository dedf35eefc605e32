"""The node check a build job runs first, on given CPUs (archspec's own) and on this machine."""

from __future__ import annotations

import os
import subprocess
import sys

import archspec.cpu
import pytest

from pmpm.cluster.nodecheck import EXIT_WRONG_NODE, check_node
from pmpm.errors import PmpmError
from pmpm.host.target import host_microarchitecture

TARGETS = archspec.cpu.TARGETS


@pytest.mark.parametrize(
    ("cpu", "target"),
    [("icelake", "icelake"), ("icelake", "x86_64_v4"), ("zen3", "x86-64-v3"), ("neoverse_v1", "aarch64")],
)
def test_a_cpu_runs_itself_and_its_ancestors(cpu: str, target: str) -> None:
    assert check_node(target, host=TARGETS[cpu], node="n1") == target.replace("-", "_")


@pytest.mark.parametrize(
    ("cpu", "target"),
    [("haswell", "x86_64_v4"), ("icelake", "zen4"), ("zen2", "zen3"), ("icelake", "a64fx")],
)
def test_a_lying_feature_map_is_refused(cpu: str, target: str) -> None:
    with pytest.raises(PmpmError) as caught:
        check_node(target, host=TARGETS[cpu], node="n7")
    error = caught.value
    assert f"node n7 cannot build for target {target}: its CPU is {cpu}" in error.message
    assert f"slurm.targets.{target}" in str(error.hint)
    assert error.exit_code == EXIT_WRONG_NODE


def test_an_unknown_target_is_a_user_error() -> None:
    with pytest.raises(PmpmError, match="unknown target 'icelak'; did you mean icelake"):
        check_node("icelak", host=TARGETS["icelake"], node="n1")


def test_command_on_this_machine() -> None:
    """``python -m pmpm.cluster.nodecheck`` as a job runs it: this CPU passes, another family's
    target is refused with its own exit code and the node named from ``SLURMD_NODENAME``."""
    host = host_microarchitecture()
    foreign = "a64fx" if host.family.name == "x86_64" else "x86_64_v4"
    env = {"SLURMD_NODENAME": "n9"}
    command = [sys.executable, "-m", "pmpm.cluster.nodecheck"]
    fits = subprocess.run([*command, host.name], capture_output=True, text=True, env=_env(env), check=False)
    assert (fits.returncode, fits.stdout.strip()) == (0, f"node n9 can run target {host.name}")
    refused = subprocess.run([*command, foreign], capture_output=True, text=True, env=_env(env), check=False)
    assert refused.returncode == EXIT_WRONG_NODE
    assert f"error: node n9 cannot build for target {foreign}: its CPU is {host.name}" in refused.stderr
    assert "Traceback" not in refused.stderr


def _env(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}
