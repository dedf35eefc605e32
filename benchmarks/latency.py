"""Time the latency-bound commands against the floor of doing the same work without the CLI.

Users run these over and over, often inside scripts and shell start-up files, so what the CLI
adds to them is paid every time:

* ``pmpm conda_install P --file ENV`` and ``pmpm system_install P --file ENV`` on an up-to-date
  prefix (the no-op answer);
* ``pmpm run P -- true``;
* ``pmpm activate P`` (what ``eval "$(pmpm activate P)"`` runs) and ``pmpm deactivate`` (with
  an environment active).

Each is timed as a whole process (the installed ``pmpm`` script), against its floor: ``python -c``
importing the module that does the work and calling it with the same arguments, no CLI at all.
The ratio is what the command line costs; target <= 1.5. A bare interpreter (``python -c pass``)
is printed to read both against.

Run it from the repository root with the venv's interpreter::

    python benchmarks/latency.py [--repeat 9] [--workdir DIR]

The exit code is 0 when every step ran, even if a target is missed (the table says PASS/FAIL).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from conda_stage import bytecode_as_installed, pmpm_command, run_timed

REPO = Path(__file__).resolve().parents[1]
TEST_CHANNEL = REPO.parent / "shared" / "realworld" / "channels" / "conda-test-recipes"
TARGET_RATIO = 1.5

GREET_MAKEFILE = """\
greet: greet.c
\t$(CC) $(CFLAGS) -o $@ greet.c $(LDFLAGS)
install: greet
\tmkdir -p $(DESTDIR)$(PREFIX)/bin
\tcp greet $(DESTDIR)$(PREFIX)/bin/
"""

#: the floor of each command: the same call without the command line (``{p}``: the prefix,
#: ``{f}``: the env file, ``{s}``: the system prefix)
FLOORS = {
    "conda_install (no-op)": (
        "from pathlib import Path; from pmpm.commands import conda_install as c\n"
        "raise SystemExit(c.run(c.Options(prefix=Path({p!r}), file=Path({f!r})), print))"
    ),
    "system_install (no-op)": (
        "from pathlib import Path; from pmpm.commands import system_install as c\n"
        "raise SystemExit(c.run(c.Options(prefix=Path({s!r}), file=Path({sf!r})), print))"
    ),
    "run P -- true": (
        "from pathlib import Path; from pmpm.record import pin\n"
        "raise SystemExit(pin.run(Path({p!r}), ['true'], print))"
    ),
    "activate P": (
        "from pathlib import Path; from pmpm.publish import activation\n"
        "raise SystemExit(activation.activate_command(Path({p!r}), 'bash'))"
    ),
    "deactivate": (
        "from pmpm.publish import activation\nraise SystemExit(activation.deactivate_command('bash'))"
    ),
}


def _ok(what: str, run) -> float:
    if run.returncode != 0:
        raise SystemExit(f"{what} failed ({run.returncode}):\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    return run.seconds


def prepare(work: Path, env: dict[str, str]) -> dict[str, str]:
    """A conda prefix (one package of the real test channel) and a compiled-only system prefix."""
    conda_env = work / "conda.yml"
    conda_env.write_text(f"channels:\n  - {TEST_CHANNEL}\ndependencies:\n  - dependency\n")
    src = work / "src" / "greet"
    src.mkdir(parents=True, exist_ok=True)
    (src / "greet.c").write_text('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    (src / "Makefile").write_text(GREET_MAKEFILE)
    (work / "recipes").mkdir(exist_ok=True)
    (work / "recipes" / "greet.yaml").write_text(
        "name: greet\nversion: '1.0'\nsource: {path: ../src/greet}\nbuild: {system: make}\n"
    )
    system_env = work / "system.yml"
    system_env.write_text(
        "dependencies: []\n_pmpm:\n  conda: false\n  recipes: [recipes]\n  packages: [greet]\n"
    )
    where = {
        "p": str(work / "conda-prefix"),
        "f": str(conda_env),
        "s": str(work / "system"),
        "sf": str(system_env),
    }
    _ok(
        "conda_install",
        run_timed([*pmpm_command(), "conda_install", where["p"], "--file", where["f"]], env=env),
    )
    _ok(
        "system_install",
        run_timed([*pmpm_command(), "system_install", where["s"], "--file", where["sf"]], env=env),
    )
    return where


def active_env(env: dict[str, str], prefix: str) -> dict[str, str]:
    """The environment of a shell that ran ``eval "$(pmpm activate PREFIX)"``."""
    import subprocess

    script = f'eval "$({" ".join(pmpm_command())} activate {prefix})" && env -0'
    out = subprocess.run(["bash", "-c", script], env=env, capture_output=True, check=True).stdout
    return dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)


def main(argv: Sequence[str] | None = None) -> int:
    bytecode_as_installed()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    if not TEST_CHANNEL.is_dir():
        raise SystemExit(f"needs the test channel {TEST_CHANNEL}")
    work = (args.workdir or Path(tempfile.mkdtemp(prefix="pmpm-bench-latency-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PMPM_CACHE_DIR": str(work / "cache")}
    print(f"workdir: {work} (cpus: {os.cpu_count()}, load {os.getloadavg()[0]:.2f})", flush=True)
    where = prepare(work, env)
    active = active_env(env, where["p"])
    commands = {
        "conda_install (no-op)": (["conda_install", where["p"], "--file", where["f"]], env),
        "system_install (no-op)": (["system_install", where["s"], "--file", where["sf"]], env),
        "run P -- true": (["run", where["p"], "--", "true"], env),
        "activate P": (["activate", where["p"]], env),
        "deactivate": (["deactivate"], active),
    }
    rows = []
    interpreter = []
    for label, (cli_args, run_env) in commands.items():
        floor_code = FLOORS[label].format(**where)
        cli, floor = [], []
        for _ in range(args.repeat):  # alternate, so load changes hit both alike
            cli.append(_ok(label, run_timed([*pmpm_command(), *cli_args], env=run_env)))
            floor.append(_ok(f"floor of {label}", run_timed([sys.executable, "-c", floor_code], env=run_env)))
            interpreter.append(_ok("python -c pass", run_timed([sys.executable, "-c", "pass"])))
        rows.append((label, statistics.median(cli), statistics.median(floor)))
    print(f"\n  {'command (whole process, median s)':36} {'pmpm':>7} {'floor':>7} {'ratio':>6}")
    for label, cli_s, floor_s in rows:
        ratio = cli_s / floor_s
        verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
        print(f"  {label:36} {cli_s:7.3f} {floor_s:7.3f} {ratio:6.2f}  <= {TARGET_RATIO} {verdict}")
    print(f"  {'interpreter: python -c pass':36} {statistics.median(interpreter):7.3f}")
    print(f"(load average after: {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
