"""``pmpm conda_install|system_install --slurm`` against a real Slurm on loopback
(``tests/slurmhelp.py``): each target's builds run as a job on the node advertising it, as the
run's delegate, and the run then finds every package up to date. Node n1 advertises
``x86_64_v3``, n2 ``x86_64_v4,icelake``; both run this machine's CPU, so the targets used here
are ones it can run (the node check is real).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import archspec.cpu
import pytest

from pmpm.host.target import host_microarchitecture
from tests.clihelp import installed, march, pmpm, tree_digest
from tests.recordhelp import LIB_C, LIB_H, MAKEFILE
from tests.slurmhelp import LoopbackSlurm

#: n1 and n2 as the settings' feature map sees them
FEATURES = {"x86_64_v3": "x86_64_v3", "x86_64_v4": "x86_64_v4"}


def _can_run(*targets: str) -> None:
    import archspec.cpu

    cpu = host_microarchitecture()
    for target in targets:
        wanted = archspec.cpu.TARGETS[target]
        if not (wanted == cpu or wanted in cpu.ancestors):
            pytest.skip(f"this machine's CPU ({cpu.name}) cannot run {target} binaries")


def _project(tmp_path: Path, pmpm_block: str, script: str | None = None) -> Path:
    """A conda stack from an empty local channel and one compiled package, ``greet`` (make), or
    a script recipe when ``script`` is given; ``pmpm_block``: more `_pmpm` keys, indented."""
    from tests.factories import LocalChannel

    channel = LocalChannel(tmp_path / "chan")
    channel.index()
    src = tmp_path / "src" / "greet"
    src.mkdir(parents=True)
    (src / "greet.c").write_text(LIB_C % "hello from a node")
    (src / "greet.h").write_text(LIB_H)
    (src / "Makefile").write_text(MAKEFILE)
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    build = (
        f"build:\n  system: script\n  script: {json.dumps(script)}\n" if script else "build: {system: make}\n"
    )
    # the comment makes the recipe this test's own: its padded build prefix (named after the
    # recipe's text) is then not shared with, nor waited for by, other tests' builds of greet
    (recipes / "greet.yaml").write_text(
        f"# {tmp_path}\nname: greet\nversion: '1.0'\nsource: {{path: ../src/greet}}\n{build}"
    )
    env = tmp_path / "env.yml"
    env.write_text(
        f"channels: [{channel.path}]\ndependencies: []\n"
        f"_pmpm:\n  recipes: [recipes]\n  packages: [greet]\n{pmpm_block}"
    )
    return env


def _slurm_block(targets: dict[str, str], **more: object) -> str:
    lines = ["  slurm:", "    cpus: 1"]
    lines += [f"    {key}: {json.dumps(value)}" for key, value in more.items()]
    lines += ["    targets:"] + [f"      {t}: {f}" for t, f in targets.items()]
    return "\n".join(lines) + "\n"


def _env(slurm: LoopbackSlurm, tmp_path: Path) -> dict[str, str]:
    """The cluster's SLURM_CONF and a cache folder of this test's own (shared by the "nodes")."""
    return {**slurm.env, "PMPM_CACHE_DIR": str(tmp_path / "cache")}


def _logs(text: str) -> dict[str, Path]:
    """target -> job log, from the run's "submitted job ... for target T (log: L)" lines."""
    return {
        t: Path(log) for _, t, log in re.findall(r"submitted job (\d+) for target (\S+) \(log: (.+)\)", text)
    }


def _digest(prefix: Path) -> dict[str, str]:
    """The prefix's tree, without the prefix lock a run leaves (it is no content)."""
    return {
        k: v for k, v in tree_digest(prefix).items() if k not in ("conda-meta/pmpm", "conda-meta/pmpm/lock")
    }


def test_one_target_is_built_by_a_job(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """The env file's one target (x86_64_v3, which only n1 advertises): the job builds on n1,
    the run compiles nothing itself and finds the package up to date."""
    _can_run("x86_64_v3")
    env = _project(tmp_path, "  target: x86_64_v3\n" + _slurm_block({"x86_64_v3": "x86_64_v3"}))
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env, "--slurm", env=_env(slurm_cluster, tmp_path))
    assert result.code == 0, result.text

    log = _logs(result.out)["x86_64_v3"]
    text = log.read_text()
    assert "node n1 can run target x86_64_v3" in text and "building greet" in text
    # the summary, not the live "running on" line: a job can end between two polls
    assert re.search(r"target x86_64_v3: 1 compiled packages built by Slurm job \d+ on n1", result.out)
    assert "building greet" not in result.out  # not by the submitting pmpm
    assert installed(prefix)["greet"].startswith("1.0-pmpm_")
    assert march(prefix / "lib" / "libgreet.so") == "x86-64-v3"
    build = installed(prefix)["greet"].split("-", 1)[1]
    assert (tmp_path / "cache" / "channel" / "linux-64" / f"greet-1.0-{build}.conda").is_file()  # cached too


def test_two_targets_build_on_their_own_nodes(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    _can_run("x86_64_v3", "x86_64_v4")
    env = _project(tmp_path, "  targets: [x86_64_v3, x86_64_v4]\n" + _slurm_block(FEATURES))
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env, "--slurm", env=_env(slurm_cluster, tmp_path))
    assert result.code == 0, result.text

    logs = _logs(result.out)
    assert set(logs) == {"x86_64_v3", "x86_64_v4"}
    for target, node in (("x86_64_v3", "n1"), ("x86_64_v4", "n2")):
        assert f"node {node} can run target {target}" in logs[target].read_text()
        summary = rf"target {target}: 1 compiled packages built by Slurm job \d+ on {node}"
        assert re.search(summary, result.out)
    assert "building greet" not in result.out  # nothing compiled by the submitting pmpm
    from pmpm.env.layout import find

    layout = find(prefix)
    assert layout.targets == ("x86_64_v3", "x86_64_v4")
    for target in layout.targets:
        stack = layout.stack(target)
        assert installed(stack)["greet"].startswith("1.0-pmpm_")
        assert march(stack / "lib" / "libgreet.so") == target.replace("_", "-")


def test_system_install_with_two_targets_through_slurm(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """The issue's acceptance run: one ``system_install --slurm`` with two targets; each
    target's stack built on its node (``ROOT/compile/T``), the binaries tuned for it."""
    _can_run("x86_64_v3", "x86_64_v4")
    env = _project(tmp_path, "  targets: [x86_64_v3, x86_64_v4]\n" + _slurm_block(FEATURES))
    root = tmp_path / "root"
    result = pmpm("system_install", root, "--file", env, "--slurm", env=_env(slurm_cluster, tmp_path))
    assert result.code == 0, result.text

    logs = _logs(result.out)
    for target, node in (("x86_64_v3", "n1"), ("x86_64_v4", "n2")):
        text = logs[target].read_text()
        assert f"node {node} can run target {target}" in text and "building greet" in text
        stack = root / "compile" / target
        assert installed(stack)["greet"].startswith("1.0-pmpm_")
        assert march(stack / "lib" / "libgreet.so") == target.replace("_", "-")
    assert "building greet" not in result.out
    again = pmpm("system_install", root, "--file", env, "--slurm", env=_env(slurm_cluster, tmp_path))
    assert again.code == 0 and "is up to date" in again.out and "submitted" not in again.out


def test_a_stack_with_nothing_to_compile_submits_no_job(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """greet already built for the target here; then the env file adds a conda package greet
    does not use: the --slurm run installs it, plans greet (its key unchanged), finds nothing
    to compile, and submits no job: on a cluster, no wait in the queue for nothing."""
    from tests.factories import LocalChannel, PackageMeta

    env = _project(tmp_path, "  target: x86_64\n" + _slurm_block({}))
    prefix = tmp_path / "p"
    first = pmpm("conda_install", prefix, "--file", env, env=_env(slurm_cluster, tmp_path))
    assert first.code == 0, first.text
    build = installed(prefix)["greet"]
    channel = LocalChannel(tmp_path / "chan")
    channel.add(PackageMeta("notes-data", "1.0", "0", noarch="generic"), {"share/notes.txt": "data\n"})
    channel.index()
    env.write_text(env.read_text().replace("dependencies: []", "dependencies: [notes-data]"))

    result = pmpm("conda_install", prefix, "--file", env, "--slurm", env=_env(slurm_cluster, tmp_path))
    assert result.code == 0, result.text
    assert installed(prefix)["notes-data"].startswith("1.0-")
    assert "slurm: target x86_64 has nothing to compile; no job submitted" in result.out
    assert "submitted job" not in result.out and "building greet" not in result.out
    assert installed(prefix)["greet"] == build


def test_a_failing_build_job_names_target_job_node_and_log(
    slurm_cluster: LoopbackSlurm, tmp_path: Path
) -> None:
    env = _project(tmp_path, "  target: x86_64\n" + _slurm_block({}), script="echo compiling greet; exit 3")
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env, "--slurm", env=_env(slurm_cluster, tmp_path))

    assert result.code != 0
    target = "x86_64"
    found = re.search(rf"the build for target {target}: Slurm job (\d+) on node (n1|n2) failed", result.err)
    assert found, result.text
    assert "nothing was installed" in result.err
    log = _logs(result.out)[target]
    assert f"log: {log}" in result.err and "compiling greet" in log.read_text()
    assert "Traceback" not in result.text
    assert not prefix.exists()


def test_a_node_whose_feature_lies_refuses_the_build(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """The map sends zen4 (an AMD CPU's target, which this host plans for but cannot run) to
    n1: the job's node check refuses before building anything."""
    cpu = host_microarchitecture()
    foreign = "zen4"
    if (
        cpu.family.name != "x86_64"
        or cpu == archspec.cpu.TARGETS[foreign]
        or archspec.cpu.TARGETS[foreign] in cpu.ancestors
    ):
        pytest.skip(f"needs an x86_64 CPU that cannot run zen4 (this is {cpu.name})")
    env = _project(tmp_path, f"  target: {foreign}\n" + _slurm_block({foreign: "x86_64_v3"}))
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env, "--slurm", env=_env(slurm_cluster, tmp_path))

    assert result.code != 0
    assert f"the build for target {foreign}: Slurm job" in result.err
    assert "on node n1 was refused by the node check" in result.err
    cpu = host_microarchitecture().name
    assert (
        f"node n1 cannot build for target {foreign}: its CPU is {cpu}"
        in _logs(result.out)[foreign].read_text()
    )
    assert not prefix.exists()


def _ctrl_c_reaches_it() -> None:
    """In the child before it runs pmpm: SIGINT at its default, as in a terminal. A suite
    started in the background by a shell without job control inherits SIGINT ignored, and
    Python then installs no KeyboardInterrupt handler: the Ctrl-C would never arrive."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("state", ["pending", "running"])
def test_ctrl_c_cancels_the_runs_jobs_and_installs_nothing(
    slurm_cluster: LoopbackSlurm, tmp_path: Path, state: str
) -> None:
    """SIGINT while the job is pending (``--begin`` an hour away) or running (its build
    sleeping): it is cancelled, said, gone from the queue, and PREFIX is as it was."""
    if state == "pending":
        env = _project(tmp_path, "  target: x86_64\n" + _slurm_block({}, extra=["--begin=now+3600"]))
    else:
        env = _project(tmp_path, "  target: x86_64\n" + _slurm_block({}), script="echo compiling; sleep 300")
    prefix = tmp_path / "p"
    prefix.mkdir()
    (prefix / "conda-meta").mkdir()  # an existing (empty) environment: it must stay as it is
    before = _digest(prefix)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pmpm", "conda_install", str(prefix), "--file", str(env), "--slurm"],
        env={**os.environ, **_env(slurm_cluster, tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_reaches_it,
    )
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + 120
    while f"): {state}" not in seen and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    job_ids = re.findall(r"submitted job (\d+)", seen)
    assert job_ids and f"): {state}" in seen, seen
    if state == "running":  # until the job's build has started
        log = _logs(seen)["x86_64"]
        while "building greet" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    seen += out

    assert proc.returncode == 130, seen + err
    assert f"cancelled this run's Slurm jobs {', '.join(job_ids)}" in seen
    queue = slurm_cluster.run("squeue", "-h", "-t", "PENDING,RUNNING,COMPLETING", "-o", "%i").stdout.split()
    assert not set(job_ids) & set(queue)
    assert _digest(prefix) == before


def test_slurm_without_sbatch_says_what_to_install(tmp_path: Path) -> None:
    env = _project(tmp_path, "  target: x86_64\n")
    bare = {"PATH": os.path.dirname(sys.executable), "PMPM_CACHE_DIR": str(tmp_path / "cache")}
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--slurm", env=bare)
    assert result.code == 1
    assert "--slurm needs Slurm's client commands, and `sbatch` is not on PATH" in result.err
    assert "slurm-client" in result.err and "Traceback" not in result.err


def test_bad_slurm_settings_name_the_env_files_line(tmp_path: Path) -> None:
    env = _project(tmp_path, "  slurm:\n    cpus: 0\n    queue: debug\n")
    result = pmpm("conda_install", tmp_path / "p", "--file", env, "--dry-run")
    assert result.code == 1
    assert f"{env}:7: slurm.cpus: must be a whole number of CPUs" in result.err, result.err
    assert f"{env}:8: unknown slurm key `queue`" in result.err


def test_a_key_that_differs_on_the_node_stops_the_run(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """The submitting host finds another ``cc`` first on its PATH (a wrapper) than the job
    does: its plan's key differs from the node's build, so it stops naming the package, the
    target and the inputs that differ, and compiles nothing itself."""
    _can_run("x86_64_v3")
    real_cc = shutil.which("cc")
    assert real_cc
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "cc").write_text(f'#!/bin/sh\nexec {real_cc} "$@"\n')
    (shims / "cc").chmod(0o755)
    path = os.environ["PATH"]
    env = _project(
        tmp_path,
        "  target: x86_64_v3\n"
        + _slurm_block({"x86_64_v3": "x86_64_v3"}, extra=[f"--export=ALL,PATH={path}"]),
    )
    prefix = tmp_path / "p"
    run_env = {**_env(slurm_cluster, tmp_path), "PATH": f"{shims}{os.pathsep}{path}"}
    result = pmpm("conda_install", prefix, "--file", env, "--slurm", env=run_env)

    assert result.code == 1, result.text
    found = re.search(
        r"greet \(target x86_64_v3\) is not up to date after Slurm job \d+ on node n1", result.err
    )
    assert found, result.err
    assert "compilers.cc: node" in result.err and str(shims / "cc") in result.err
    assert "building greet" not in result.out
    assert not prefix.exists()


def test_jobs_of_two_runs_fill_one_shared_cache_at_once(slurm_cluster: LoopbackSlurm, tmp_path: Path) -> None:
    """Two runs (x86_64_v3 on n1, x86_64_v4 on n2) share one cache folder; their jobs build
    and index it at the same time. Both installs come from it, and the channel is whole."""
    _can_run("x86_64_v3", "x86_64_v4")
    runs = {}
    for target in ("x86_64_v3", "x86_64_v4"):
        folder = tmp_path / target
        folder.mkdir()
        env = _project(folder, f"  target: {target}\n" + _slurm_block({target: target}))
        command = [
            sys.executable,
            "-m",
            "pmpm",
            "conda_install",
            str(folder / "p"),
            "--file",
            str(env),
            "--slurm",
        ]
        runs[target] = subprocess.Popen(
            command,
            env={**os.environ, **_env(slurm_cluster, tmp_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    outputs = {target: proc.communicate(timeout=300)[0] for target, proc in runs.items()}
    for target, proc in runs.items():
        assert proc.returncode == 0, outputs[target]
        assert "building greet" not in outputs[target]
        assert march(tmp_path / target / "p" / "lib" / "libgreet.so") == target.replace("_", "-")

    channel = tmp_path / "cache" / "channel" / "linux-64"
    listed = json.loads((channel / "repodata.json").read_text())["packages.conda"]
    files = sorted(p.name for p in channel.glob("*.conda"))
    assert len(files) == 2 and sorted(listed) == files
    assert not [p for p in channel.iterdir() if p.name.startswith(".")]  # no half-written file left
    import asyncio

    from rattler import RepoDataRecord  # each package reads back whole

    async def read() -> list[str]:
        return [str((await RepoDataRecord.from_package_archive(channel / f)).name.normalized) for f in files]

    assert asyncio.run(read()) == ["greet", "greet"]
