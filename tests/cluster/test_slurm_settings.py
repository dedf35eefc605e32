"""``_pmpm.slurm`` settings: checked before anything is submitted, turned into sbatch arguments."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pmpm.cluster.settings import Placement, SlurmSettings
from pmpm.cluster.slurm import job_script, sbatch_args
from pmpm.errors import PmpmError

SITE = {
    "partition": "compute",
    "account": "proj123",
    "time": "1:30:00",
    "cpus": 8,
    "memory": "16g",
    "extra": ["--qos=normal", "--exclusive"],
    "targets": {"x86-64-v3": "haswell|broadwell", "zen3": {"constraint": "milan", "partition": "amd"}},
}


def test_a_site_block_becomes_sbatch_arguments(tmp_path: Path) -> None:
    settings = SlurmSettings.from_mapping(SITE)
    assert settings.targets == {
        "x86_64_v3": Placement(constraint="haswell|broadwell"),  # gcc's spelling, archspec's name
        "zen3": Placement(constraint="milan", partition="amd"),
    }
    log = tmp_path / "zen3.log"
    args = sbatch_args(settings, name="pmpm-zen3", log=log, target="zen3", workdir=tmp_path)
    assert args == [
        "--parsable",
        "--job-name=pmpm-zen3",
        f"--output={log}",
        f"--chdir={tmp_path}",
        "--partition=amd",  # the target's own partition wins over the site's
        "--account=proj123",
        "--time=1:30:00",
        "--cpus-per-task=8",
        "--mem=16G",
        "--constraint=milan",
        "--qos=normal",
        "--exclusive",
    ]
    v3 = sbatch_args(settings, name="v3", log=log, target="x86_64_v3")
    assert "--partition=compute" in v3 and "--constraint=haswell|broadwell" in v3


def test_empty_settings_leave_everything_to_the_site(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert sbatch_args(SlurmSettings.from_mapping({}), name="x", log=log) == [
        "--parsable",
        "--job-name=x",
        f"--output={log}",
    ]


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        ({"time": "90 minutes"}, "slurm.time: '90 minutes' is not a Slurm time limit"),
        ({"cpus": 0}, "slurm.cpus: must be a whole number of CPUs"),
        ({"cpus": True}, "slurm.cpus: must be a whole number of CPUs"),
        ({"memory": "lots"}, "slurm.memory: 'lots' is not a Slurm memory size"),
        ({"partition": "a b"}, "slurm.partition: 'a b' is not a Slurm name"),
        ({"extra": "--qos=x"}, "slurm.extra: must be a list of sbatch arguments"),
        ({"extra": ["--output=/tmp/x"]}, "pmpm names each job's log itself"),
        ({"extra": ["-p", "debug"]}, "use the `slurm.partition` key instead"),
        ({"extra": ["--constraint=avx512"]}, "use the `slurm.targets` key instead"),
        ({"targets": ["zen3"]}, "slurm.targets: must map each target"),
        ({"targets": {"zen33": "milan"}}, "unknown target 'zen33'; did you mean zen3"),
        ({"targets": {"host": "x"}}, "`host` names the submitting machine"),
        ({"targets": {"zen3": {"feature": "milan"}}}, "give `constraint` and/or `partition`, not feature"),
        ({"queue": "debug"}, "unknown slurm key `queue`"),
    ],
)
def test_bad_settings_are_named(block: dict[str, object], expected: str) -> None:
    with pytest.raises(PmpmError) as caught:
        SlurmSettings.from_mapping(block, where="env.yml:12")
    assert expected in str(caught.value)
    assert "env.yml:12" in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(PmpmError) as caught:
        SlurmSettings.from_mapping({"time": "soon", "cpus": -1, "queue": "x"}, where="env.yml:3")
    text = str(caught.value)
    assert text.startswith("3 problems in the slurm settings")
    assert "slurm.time" in text and "slurm.cpus" in text and "`queue`" in text


def test_not_a_mapping() -> None:
    with pytest.raises(PmpmError, match="`slurm` must be a mapping"):
        SlurmSettings.from_mapping(["partition"], where="env.yml:2")


def test_a_target_without_nodes_cannot_be_placed(tmp_path: Path) -> None:
    settings = SlurmSettings.from_mapping({"targets": {"zen3": "milan"}})
    with pytest.raises(PmpmError) as caught:
        sbatch_args(settings, name="x", log=tmp_path / "x.log", target="x86_64_v4")
    assert "no Slurm nodes are named for target 'x86_64_v4' (slurm.targets has: zen3)" in str(caught.value)
    assert "sinfo" in str(caught.value.hint)


def test_job_script_keeps_each_argument_whole(tmp_path: Path) -> None:
    """Arguments with spaces, quotes and ``$`` reach the program as they are, never as shell code."""
    odd = ["it's", "two words", "$HOME", "; rm -rf /", "*"]
    script = tmp_path / "job.sh"
    script.write_text(
        job_script([["printf", "%s\\n", *odd], ["sh", "-c", 'echo "$GREETING"']], env={"GREETING": "a b'c"})
    )
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert done.stdout.splitlines() == [*odd, "a b'c"]


def test_job_script_stops_at_the_first_failure(tmp_path: Path) -> None:
    script = tmp_path / "job.sh"
    script.write_text(job_script([["sh", "-c", "exit 5"], ["echo", "after"]]))
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (5, "")
