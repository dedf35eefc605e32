"""What building through Slurm costs: the same targets built by ``--slurm`` jobs and built here.

One run, on this machine, now: a loopback Slurm cluster (``tests/slurmhelp.py``: a controller
and two ``slurmd`` "nodes", n1 advertising ``x86_64_v3`` and n2 ``x86_64_v4``) is started, and
one C library from a local tree (``--files`` files of small loops, as in ``compile_stage.py``) is
compiled for both targets by ``pmpm system_install`` twice per repetition, alternating:

* **local**: without ``--slurm``: both targets' builds on this host, one target after the
  other, each with ``--jobs 2``;
* **slurm**: with ``--slurm``: one job per target (``cpus: 1`` each), both at once.

Each into a new root with a cache folder of its own (nothing comes from a binary cache). Both
"nodes" share this machine's two cores, so the Slurm path cannot be faster here: the figure is
its overhead (submission, polling, the jobs' own start-up, planning the stacks again), against
the target overhead <= 10% of the local time + 5 s. Also printed: the time from the first
submission to the first job running.

Run it from the repository root with the venv's interpreter (Slurm's daemons installed, see
``../shared/notes/slurm-on-one-machine.md``)::

    python benchmarks/slurm.py [--repeat 3] [--files 24] [--workdir DIR]

The exit code is 0 when every step ran, even if the target is missed (the line says PASS/FAIL).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from compile_stage import write_library  # noqa: E402

from tests.slurmhelp import loopback_slurm  # noqa: E402

TARGETS = ("x86_64_v3", "x86_64_v4")
NODES = {"n1": ("x86_64_v3",), "n2": ("x86_64_v4",)}
TARGET_SHARE, TARGET_SECONDS = 0.10, 5.0


@dataclass
class Timing:
    total: float
    first_running: float | None = None  # from the first submission to the first job running


def write_env(work: Path, files: int, functions: int) -> Path:
    write_library(work, "kern", files, functions)
    env = work / "env.yml"
    features = "".join(f"      {t}: {t}\n" for t in TARGETS)
    env.write_text(
        "dependencies: []\n"
        "_pmpm:\n"
        "  conda: false\n"
        f"  targets: [{', '.join(TARGETS)}]\n"
        "  recipes: [recipes]\n"
        "  packages: [kern]\n"
        "  slurm:\n"
        "    cpus: 1\n"
        "    targets:\n" + features
    )
    return env


def run(args: list[str], env: dict[str, str]) -> Timing:
    """One whole ``pmpm`` process, its output read line by line as it comes (for the time of
    the first submission and of the first job running)."""
    began = time.monotonic()
    submitted = running = None
    proc = subprocess.Popen(
        [sys.executable, "-m", "pmpm", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    out = []
    for line in proc.stdout:
        out.append(line)
        now = time.monotonic()
        if submitted is None and "slurm: submitted job" in line:
            submitted = now
        if running is None and re.search(r"slurm: job \d+ .*: running", line):
            running = now
    code = proc.wait()
    total = time.monotonic() - began
    if code != 0:
        raise SystemExit(f"pmpm {' '.join(args)} failed ({code}):\n{''.join(out)[-3000:]}")
    gap = running - submitted if submitted is not None and running is not None else None
    return Timing(total, gap)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--functions", type=int, default=40)
    parser.add_argument("--workdir", type=Path)
    opts = parser.parse_args(argv)
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="pmpm-bench-slurm-"))
    work.mkdir(parents=True, exist_ok=True)
    env_file = write_env(work, opts.files, opts.functions)
    local: list[Timing] = []
    slurm: list[Timing] = []
    with loopback_slurm(work / "slurm", NODES) as cluster:
        for i in range(opts.repeat):
            for kind, found in (("local", local), ("slurm", slurm)):
                folder = work / f"{kind}-{i}"
                shutil.rmtree(folder, ignore_errors=True)
                env = {**cluster.env, "PMPM_CACHE_DIR": str(folder / "cache")}
                args = ["system_install", str(folder / "root"), "--file", str(env_file)]
                args += ["--slurm"] if kind == "slurm" else ["--jobs", "2"]
                found.append(run(args, env))
                print(f"  {kind:<5} run {i + 1}: {found[-1].total:6.1f} s", flush=True)
    here = statistics.median(t.total for t in local)
    there = statistics.median(t.total for t in slurm)
    overhead = there - here
    allowed = TARGET_SHARE * here + TARGET_SECONDS
    gaps = [t.first_running for t in slurm if t.first_running is not None]
    gap = statistics.median(gaps) if gaps else float("nan")
    what = f"{len(TARGETS)} targets ({', '.join(TARGETS)}), one {opts.files}-file library"
    print(f"\n{what}, {os.cpu_count()} cores")
    print(f"  local (one target after the other, --jobs 2)  median {here:6.1f} s")
    print(f"  slurm (one job per target, cpus: 1 each)      median {there:6.1f} s")
    verdict = "PASS" if overhead <= allowed else "FAIL"
    print(f"  slurm overhead {overhead:+.1f} s (target <= {allowed:.1f} s = 10% + 5 s): {verdict}")
    print(f"  submission to the first job running: median {gap:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
