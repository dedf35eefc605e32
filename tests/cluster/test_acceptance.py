"""Issue #13's acceptance, as a new user would run it: on the loopback cluster
(``tests/slurmhelp.py``), one ``pmpm system_install ROOT --file env.yml --slurm`` with two
targets writes an Lmod and a Tcl module; loaded in a job on either node (``srun -w n1``,
``sbatch -w n2 --wait``), the module runs the program built for that node's target, and
``readelf -p .GCC.command.line`` on it shows that target's ``-march``.

Both "nodes" run this machine's CPU, so each job gets a fake cpuinfo of its node's CPU through
``PMPM_CPUINFO`` (for tests only; the modulefile's ``archdetect.sh`` reads it instead of
``/proc/cpuinfo``), chosen inside the job by ``$SLURMD_NODENAME``: n1 (Features=x86_64_v3) a
haswell, which runs x86_64_v3 but not x86_64_v4; n2 (Features=x86_64_v4,icelake) an icelake.
The builds themselves run on the real CPU (the node check is real), so this machine must run
x86_64_v4.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import archspec.cpu
import pytest

from pmpm.env import layout as layouts
from pmpm.host.target import host_microarchitecture
from tests.clihelp import Result, pmpm
from tests.factories import LocalChannel
from tests.publish.pubhelp import TOOLS, _clean_env
from tests.publish.test_target_choice_use import _cpuinfo
from tests.slurmhelp import LoopbackSlurm

pytestmark = pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) is not installed")

TARGETS = ("x86_64_v3", "x86_64_v4")
#: node -> (the target its Features= advertise, the CPU its job's fake cpuinfo describes)
NODES = {"n1": ("x86_64_v3", "haswell"), "n2": ("x86_64_v4", "icelake")}
NAME = "acceptance-demo"

#: a program that says whether it was compiled with AVX-512 (x86_64_v4 has it, x86_64_v3 not)
PROGRAM_C = """\
#include <stdio.h>
int main(void) {
#ifdef __AVX512F__
    puts("whereami: avx512f code");
#else
    puts("whereami: no avx512f code");
#endif
    return 0;
}
"""
MAKEFILE = """\
whereami: whereami.c
\t$(CC) $(CFLAGS) $(CPPFLAGS) -o $@ whereami.c $(LDFLAGS)
install: whereami
\tmkdir -p $(DESTDIR)$(PREFIX)/bin
\tcp whereami $(DESTDIR)$(PREFIX)/bin/
"""


@dataclass
class Installed:
    """The one ``system_install --slurm`` every test here loads: its ROOT, module folders, output."""

    root: Path
    modules: dict[str, Path]
    cpuinfo: Path
    result: Result


def _can_build_both() -> None:
    cpu = host_microarchitecture()
    for target in TARGETS:
        wanted = archspec.cpu.TARGETS[target]
        if not (wanted == cpu or wanted in cpu.ancestors):
            pytest.skip(f"this machine's CPU ({cpu.name}) cannot run {target} binaries")


def _env_file(tmp: Path, modules: dict[str, Path]) -> Path:
    """An empty local conda channel and one C program (``whereami``, make) from a local tree."""
    channel = LocalChannel(tmp / "chan")
    channel.index()
    src = tmp / "src" / "whereami"
    src.mkdir(parents=True)
    (src / "whereami.c").write_text(PROGRAM_C)
    (src / "Makefile").write_text(MAKEFILE)
    (tmp / "recipes").mkdir()
    # the comment makes the recipe this test's own (its padded build prefix is named after it)
    (tmp / "recipes" / "whereami.yaml").write_text(
        f"# {tmp}\nname: whereami\nversion: '1.0'\n"
        "source: {path: ../src/whereami}\nbuild: {system: make}\n"
    )
    env = tmp / "env.yml"
    env.write_text(
        f"name: {NAME}\nchannels: [{channel.path}]\ndependencies: []\n"
        "_pmpm:\n"
        f"  targets: [{', '.join(TARGETS)}]\n"
        "  recipes: [recipes]\n"
        "  packages: [whereami]\n"
        f"  modules: {{lmod: {modules['lmod']}, tcl: {modules['tcl']}}}\n"
        "  slurm:\n"
        "    cpus: 1\n"
        "    targets:\n" + "".join(f"      {target}: {target}\n" for target, _ in NODES.values())
    )
    return env


@pytest.fixture(scope="module")
def installed(slurm_cluster: LoopbackSlurm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """One run for both module tools: the expensive part (two build jobs) is done once."""
    _can_build_both()
    tmp = tmp_path_factory.mktemp("acceptance")
    modules = {kind: tmp / "modules" / kind for kind in ("lmod", "tcl")}
    env = _env_file(tmp, modules)
    root = tmp / "root"
    result = pmpm(
        "system_install", root, "--file", env, "--slurm",
        env={**slurm_cluster.env, "PMPM_CACHE_DIR": str(tmp / "cache")},
    )  # fmt: skip
    assert result.code == 0, result.text
    cpuinfo = tmp / "cpuinfo"  # cpuinfo/<node>: the fake CPU of that node's jobs
    cpuinfo.mkdir()
    for node, (target, cpu) in NODES.items():
        assert archspec.cpu.TARGETS[target] in archspec.cpu.TARGETS[cpu].ancestors
        (cpuinfo / node).symlink_to(_cpuinfo(tmp, cpu))
    assert archspec.cpu.TARGETS["x86_64_v4"] not in archspec.cpu.TARGETS["haswell"].ancestors
    yield Installed(root, modules, cpuinfo, result)


def _job_script(init: str, moddir: Path, cpuinfo: Path, path: Path) -> Path:
    """What a user's job does: load the module, run the program, look at how it was built."""
    program = '"$(command -v whereami)"'
    path.write_text(
        "\n".join(
            [
                "#!/bin/bash",
                'echo "node=$SLURMD_NODENAME"',
                f'export PMPM_CPUINFO={shlex.quote(str(cpuinfo))}/"$SLURMD_NODENAME"',
                init,
                f"module use {shlex.quote(str(moddir))}",
                f"module load {NAME} || exit 7",
                'echo "target=$PMPM_MODULE_TARGET"',
                "command -v whereami",
                "whereami",
                f"readelf -p .GCC.command.line {program} | grep -o -- '-march=[a-z0-9-]*' | head -1",
                "",
            ]
        )
    )
    return path


def _run_on(node: str, script: Path, slurm: LoopbackSlurm, tmp: Path) -> tuple[str, str]:
    """(stdout, stderr) of ``script`` run on ``node``: n1 interactively (``srun``), n2 as a batch
    job (``sbatch --wait``), the two ways users run there. The job's environment is a clean one
    plus ``SLURM_CONF`` (Slurm passes the submitter's environment on)."""
    env = {**_clean_env(tmp), "SLURM_CONF": str(slurm.conf)}
    if node == "n1":
        argv = ["srun", "-w", node, "-N", "1", "-n", "1", "bash", "--noprofile", "--norc", str(script)]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout, proc.stderr
    out, err = tmp / f"{node}.out", tmp / f"{node}.err"
    argv = ["sbatch", "-w", node, "--wait", "-o", str(out), "-e", str(err), str(script)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    text = (out.read_text() if out.exists() else "") + (err.read_text() if err.exists() else "")
    assert proc.returncode == 0, proc.stdout + proc.stderr + text
    return out.read_text(), err.read_text()


def test_the_run_built_each_target_in_a_job(installed: Installed) -> None:
    """The submitting pmpm compiled nothing: one job per target, each on its feature's node."""
    out = installed.result.out
    for node, (target, _) in NODES.items():
        built = rf"target {target}: 1 compiled packages built by Slurm job \d+ on {node}\n"
        assert re.search(built, out), installed.result.text
    assert "building whereami" not in out
    assert layouts.find(installed.root).targets == TARGETS


@pytest.mark.parametrize(("kind", "init"), TOOLS, ids=["lmod", "tcl"])
@pytest.mark.parametrize("node", list(NODES))
def test_the_module_loaded_on_each_node_runs_that_nodes_binaries(
    installed: Installed, slurm_cluster: LoopbackSlurm, tmp_path: Path, node: str, kind: str, init: str
) -> None:
    target, _ = NODES[node]
    script = _job_script(init, installed.modules[kind], installed.cpuinfo, tmp_path / "job.sh")
    out, err = _run_on(node, script, slurm_cluster, tmp_path)

    lines = out.splitlines()
    assert lines[0] == f"node={node}", out + err
    assert lines[1] == f"target={target}", out + err
    assert lines[2] == str(layouts.find(installed.root).stack(target) / "bin" / "whereami")
    assert lines[3] == ("whereami: avx512f code" if target == "x86_64_v4" else "whereami: no avx512f code")
    assert lines[4] == "-march=" + target.replace("_", "-")  # x86_64_v3 -> -march=x86-64-v3
    assert f"pmpm: using target {target}" in err, err
