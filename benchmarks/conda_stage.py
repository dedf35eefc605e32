"""Time pmpm's conda stage against bare py-rattler on a synthetic local channel.

pmpm wraps py-rattler with a parser, channel resolution, a journal, a prefix lock and a no-op
state. That wrapping must stay cheap next to the solve and link it guards, and an up-to-date
prefix must be recognised in a fraction of a second. Both claims only mean something on a
channel of realistic size, and none is reachable from our machines, so this script builds one:
~2,000 genuine ``.conda`` packages (written by :func:`pmpm.build.package.pack`, indexed by rattler)
with a layered dependency graph and version ranges. It then times, as whole processes:

* ``pmpm conda_install PREFIX --file env.yml`` on a fresh prefix with a cold package cache;
* a minimal py-rattler script doing the same solve and install (the yardstick);
* the no-op re-run of pmpm on the prefix it just built;
* the floor: python importing the modules pmpm's no-op path uses (``FLOOR_IMPORTS``), and
  the bare interpreter (``python -c pass``) to read it against.

It prints a table with medians, min and max, checks the targets (PASS/FAIL, informational: the
exit code is 0 unless something errored), and checks that both contenders installed the same
packages. Run it from the repository root with the venv's interpreter::

    python benchmarks/conda_stage.py [--packages 2000] [--env-size 200] [--repeat 3]
                                     [--workdir DIR] [--json FILE]

With ``--workdir``, the generated channel is kept there and reused by later runs with the same
generator settings, so only the first run pays for building it. ``benchmarks/README.md`` explains
the method (warm-up, alternation, why nothing is deleted before the timings) and the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Bump when the generated channel changes shape, so a kept ``--workdir`` is rebuilt.
GENERATOR_VERSION = 1

#: The targets the conda stage is held to (seconds or ratios, upper bounds).
TARGET_CREATE_RATIO = 1.3
TARGET_NOOP_SECONDS = 0.5
#: A later target, printed for information only for now.
LATER_NOOP_FLOOR_RATIO = 1.5
#: 1-minute load average above which the report warns that other work skewed the figures.
BUSY_LOAD = 0.5
#: How long ext4 keeps treating freed inodes as recently deleted (see :func:`_wait_for_ext4`).
EXT4_RECENT_S = 360
#: When this script last deleted its prefixes, for the next run to wait out ext4's slow spell.
CLEANUP_MARKER = Path(tempfile.gettempdir()) / "pmpm-bench-last-cleanup"

#: conda-build's padded build prefix: the text files that mention it are relocated at install.
PLACEHOLDER = "/opt/conda-bld/_h_env_" + "placehold_" * 23

#: Share of package names per dependency level: level 0 are core libraries everything may use,
#: level 5 are applications. Real ecosystems are about this deep.
LEVEL_WEIGHTS = (8, 20, 25, 22, 15, 10)
#: Names per "ecosystem": dependencies stay mostly inside one, as in conda-forge, which keeps an
#: environment of 40 requests at a few hundred packages instead of the whole channel.
CLUSTER_SIZE = 25
#: Lowest level a requested (top-level) package has.
ROOT_MIN_LEVEL = 3

#: Made-up package names are built from these.
_SYLLABLE_TEXT = (
    "ar bel cor dex el fan gor hal ix jun kel lum mor nex ob pra quo rin sol tor ul vex wen xan yor zed ka mi"
)
_SYLLABLES = tuple(_SYLLABLE_TEXT.split())

HERE = Path(__file__).resolve().parent
OLD_CHANNEL_PREFIX = "channel-old-"
HOST_SUBDIR = ""  # set in main() from pmpm.build.package.host_subdir (import-light)

#: what a no-op run must import at least: the floor the no-op re-run is compared with
FLOOR_IMPORTS = (
    "import pmpm.commands.catalog, pmpm.commands.fast, pmpm.commands.conda_install, "
    "pmpm.env.state, pmpm.env.layout"
)


# ----------------------------------------------------------------------------------------- plan


@dataclass
class Name:
    """One package name of the channel and what all its versions share."""

    name: str
    index: int
    level: int
    cluster: int
    noarch: bool
    versions: list[str]
    anchor: int  # the version that is compatible with every other name's anchor: a solution exists
    deps: list[str] = field(default_factory=list)
    extra_dep: str | None = None  # only the newest version has it, as when a library grows a dep


@dataclass(frozen=True)
class Planned:
    """One package file to build."""

    name: str
    version: str
    build: str
    subdir: str
    depends: tuple[str, ...]
    timestamp: int
    seed: str


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _make_versions(rng: random.Random, count: int) -> list[str]:
    major, minor, patch = rng.choice((0, 1, 1, 2, 3)), rng.randint(0, 9), 0
    versions = [f"{major}.{minor}.{patch}"]
    for _ in range(count - 1):
        roll = rng.random()
        if roll < 0.5:
            patch += 1
        elif roll < 0.85:
            minor, patch = minor + 1, 0
        else:
            major, minor, patch = major + 1, 0, 0
        versions.append(f"{major}.{minor}.{patch}")
    return versions


def _make_names(rng: random.Random, total_packages: int) -> list[Name]:
    """Names with 2-5 versions each until ``total_packages`` versions exist, in level order."""
    counts: list[int] = []
    while sum(counts) < total_packages:
        counts.append(rng.choices((2, 3, 4, 5), weights=(30, 35, 20, 15))[0])
    excess = sum(counts) - total_packages
    while excess:
        # trim the largest counts so the total is exact and no name drops below 2 versions
        i = max(range(len(counts)), key=lambda k: counts[k])
        if counts[i] <= 2:
            break
        counts[i] -= 1
        excess -= 1
    seen: set[str] = set()
    names: list[Name] = []
    levels = sorted(rng.choices(range(len(LEVEL_WEIGHTS)), weights=LEVEL_WEIGHTS, k=len(counts)))
    for index, (count, level) in enumerate(zip(counts, levels, strict=True)):
        while True:
            stem = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3))))
            text = ("lib" + stem) if level == 0 else stem
            if rng.random() < 0.15:
                text += rng.choice(("-core", "-utils", "-data", "-tools"))
            if text not in seen:
                seen.add(text)
                break
        versions = _make_versions(rng, count)
        anchor = len(versions) - 1 if rng.random() < 0.8 else len(versions) - 2
        noarch = level > 0 and rng.random() < 0.3
        names.append(Name(text, index, level, 0, noarch, versions, anchor))
    # clusters: consecutive names of each level, so every ecosystem has names at every level
    for level in range(len(LEVEL_WEIGHTS)):
        members = [n for n in names if n.level == level]
        clusters = max(1, round(len(names) / CLUSTER_SIZE))
        for i, n in enumerate(members):
            n.cluster = i * clusters // max(1, len(members))
    return names


def _pick_deps(rng: random.Random, names: list[Name]) -> None:
    by_level: dict[int, list[Name]] = {}
    for n in names:
        by_level.setdefault(n.level, []).append(n)
    for n in names:
        # core libraries have few dependencies of their own; the others one to four
        k = rng.choice((0, 0, 1)) if n.level == 0 else rng.choices((1, 2, 3, 4), weights=(30, 35, 25, 10))[0]
        chosen: list[str] = []
        for _ in range(k + 1):  # one more: the newest version's extra dependency
            if n.level == 0:
                pool = [m for m in by_level[0] if m.index < n.index]
            elif rng.random() < 0.15:
                pool = by_level[0]
            else:
                level = max(0, n.level - rng.choices((1, 2), weights=(65, 35))[0])
                pool = [m for m in by_level[level] if m.cluster == n.cluster] or by_level[level]
                if rng.random() < 0.1:
                    pool = by_level[level]  # the odd dependency on another ecosystem
            pool = [m for m in pool if m.name not in chosen]
            if pool:
                chosen.append(rng.choice(pool).name)
        if len(chosen) > k:
            n.deps, n.extra_dep = chosen[:k], (chosen[k] if rng.random() < 0.3 else None)
        else:
            n.deps = chosen


def _range(rng: random.Random, dep: Name, target: int) -> str:
    """A spec for ``dep`` that its version ``target`` satisfies, in the styles recipes use."""
    version = dep.versions[target]
    major, minor, _ = _version_key(version)
    roll = rng.random()
    if roll < 0.2:
        return dep.name
    low = _version_key(dep.versions[rng.randint(0, target)])
    low_text = f"{low[0]}.{low[1]}"
    if roll < 0.5:
        return f"{dep.name} >={low_text}"
    if roll < 0.9:
        return f"{dep.name} >={low_text},<{major + 1}"
    return f"{dep.name} {major}.{minor}.*"


def plan_channel(seed: int, total_packages: int) -> tuple[list[Name], list[Planned]]:
    """The whole channel, decided before anything is written: same seed, same channel."""
    rng = random.Random(seed)
    names = _make_names(rng, total_packages)
    _pick_deps(rng, names)
    by_name = {n.name: n for n in names}
    planned: list[Planned] = []
    for n in names:
        subdir = "noarch" if n.noarch else HOST_SUBDIR
        last = len(n.versions) - 1
        for j, version in enumerate(n.versions):
            depends = []
            dep_names = n.deps + ([n.extra_dep] if n.extra_dep and j == last else [])
            for dep_name in dep_names:
                dep = by_name[dep_name]
                if j == n.anchor:
                    target = dep.anchor
                else:  # older versions of a package were built against older dependencies
                    share = j / max(1, last)
                    target = round(share * (len(dep.versions) - 1)) - rng.choice((0, 0, 1))
                    target = min(len(dep.versions) - 1, max(0, target))
                depends.append(_range(rng, dep, target))
            if n.level == 0 and not n.noarch:
                depends.append("__glibc >=2.17")
            digest = hashlib.sha256(f"{n.name}-{version}-{','.join(depends)}".encode()).hexdigest()[:8]
            planned.append(
                Planned(
                    name=n.name,
                    version=version,
                    build=f"h{digest}_0",
                    subdir=subdir,
                    depends=tuple(depends),
                    timestamp=1_700_000_000_000 + n.index * 10_000 + j * 1_000,
                    seed=f"{seed}:{n.name}:{version}",
                )
            )
    return names, planned


def closure(names: dict[str, Name], roots: Iterable[str]) -> set[str]:
    """Every name the roots may pull in (all versions' dependencies: an upper bound)."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        n = names[name]
        stack.extend(n.deps)
        if n.extra_dep:
            stack.append(n.extra_dep)
    return seen


def choose_request(seed: int, names: list[Name], top_level: int, env_size: int) -> list[str]:
    """``top_level`` specs whose environment holds about ``env_size`` packages.

    Greedy: take upper-level names in a seeded order while the union of what they pull in stays
    within ``env_size``; names already pulled in are free, as in a real env file that lists both
    an application and a library it uses.
    """
    rng = random.Random(seed * 7919 + 1)
    by_name = {n.name: n for n in names}
    candidates = [n for n in names if n.level >= ROOT_MIN_LEVEL]
    rng.shuffle(candidates)
    roots: list[Name] = []
    union: set[str] = set()
    for n in candidates:
        grown = union | closure(by_name, [n.name])
        if len(grown) <= env_size:
            roots.append(n)
            union = grown
        if len(roots) == top_level:
            break
    specs = []
    for n in sorted(roots, key=lambda r: r.name):
        specs.append(_range(rng, n, n.anchor) if rng.random() < 0.5 else n.name)
    return specs


# ---------------------------------------------------------------------------------------- build


def _payload(p: Planned) -> tuple[dict[str, bytes], dict[str, str]]:
    """The files of one package: a few small ones in lib/ and share/, one with the placeholder."""
    rng = random.Random(p.seed)
    words = [rng.choice(_SYLLABLES) * rng.randint(1, 3) for _ in range(rng.randint(40, 300))]
    readme = f"# {p.name} {p.version}\n\n" + " ".join(words) + "\n"
    files: dict[str, bytes] = {f"share/{p.name}/README.md": readme.encode()}
    symlinks: dict[str, str] = {}
    if p.subdir == "noarch":
        files[f"share/{p.name}/{p.name}.conf"] = (
            f"# {p.name} configuration\nprefix = {PLACEHOLDER}\ndata = {PLACEHOLDER}/share/{p.name}\n"
        ).encode()
        files[f"lib/{p.name}/resources.json"] = json.dumps(
            {"name": p.name, "version": p.version, "values": [rng.random() for _ in range(20)]}
        ).encode()
        files[f"lib/{p.name}/schema.txt"] = "\n".join(words[:50]).encode()
        symlinks[f"share/{p.name}/current.json"] = f"../../lib/{p.name}/resources.json"
    else:
        lib = p.name if p.name.startswith("lib") else f"lib{p.name}"
        soname = f"{lib}.so.{p.version}"
        files[f"lib/{soname}"] = b"\x7fELF\x02\x01\x01\x00" + rng.randbytes(rng.randint(1_000, 12_000))
        symlinks[f"lib/{lib}.so"] = soname
        files[f"lib/pkgconfig/{p.name}.pc"] = (
            f"prefix={PLACEHOLDER}\nlibdir=${{prefix}}/lib\nincludedir=${{prefix}}/include\n\n"
            f"Name: {p.name}\nVersion: {p.version}\nLibs: -L${{libdir}} -l{lib[3:]}\n"
        ).encode()
        files[f"share/{p.name}/LICENSE"] = b"BSD-3-Clause\n" + " ".join(words[:80]).encode()
    return files, symlinks


def _build_one(job: tuple[Planned, str, str]) -> str:
    """Stage and pack one package (runs in a worker process)."""
    from pmpm.build.package import PackageMeta, pack

    p, channel, scratch = job
    files, symlinks = _payload(p)
    staged = Path(tempfile.mkdtemp(prefix=f"{p.name}-", dir=scratch))
    try:
        for rel, content in files.items():
            path = staged / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        for rel, target in symlinks.items():
            os.symlink(target, staged / rel)
        meta = PackageMeta(
            name=p.name,
            version=p.version,
            build=p.build,
            depends=p.depends,
            noarch="generic" if p.subdir == "noarch" else None,
            subdir=p.subdir,
            license="BSD-3-Clause",
            summary=f"synthetic benchmark package {p.name}",
            timestamp=p.timestamp,
        )
        return str(pack(staged, meta, Path(channel) / p.subdir, placeholder=PLACEHOLDER))
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def index_channel(channel: Path) -> None:
    from rattler.index import index_fs

    for subdir in ("noarch", HOST_SUBDIR):
        (channel / subdir).mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        await index_fs(channel, write_zst=False, write_shards=False, force=True)
        await asyncio.sleep(0.05)  # let py-rattler's workers finish before the loop closes

    asyncio.run(run())


@dataclass
class ChannelInfo:
    path: Path
    packages: int
    names: int
    noarch: int
    reused: bool
    generate_s: float | None
    index_s: float | None


def build_channel(workdir: Path, seed: int, total: int, jobs: int) -> tuple[ChannelInfo, list[Name]]:
    names, planned = plan_channel(seed, total)
    channel = workdir / "channel"
    stamp_path = workdir / "channel-stamp.json"
    stamp = {"generator": GENERATOR_VERSION, "seed": seed, "packages": total, "subdir": HOST_SUBDIR}
    info = ChannelInfo(
        channel,
        len(planned),
        len(names),
        sum(p.subdir == "noarch" for p in planned),
        reused=False,
        generate_s=None,
        index_s=None,
    )
    try:
        reusable = json.loads(stamp_path.read_text()) == stamp
    except (OSError, ValueError):
        reusable = False
    if reusable and (channel / HOST_SUBDIR / "repodata.json").is_file():
        info.reused = True
        print(f"channel: reusing {channel} ({info.packages} packages)", flush=True)
        return info, names

    stamp_path.unlink(missing_ok=True)
    if channel.exists():  # set aside, deleted after the timings (see _wait_for_ext4)
        channel.rename(workdir / f"{OLD_CHANNEL_PREFIX}{time.time_ns()}")
    print(
        f"channel: generating {info.packages} packages ({info.names} names) with {jobs} workers", flush=True
    )
    start = time.perf_counter()
    # Staging trees and pack()'s scratch copies come and go by the thousand. Deleted on ext4,
    # they would slow the next file creations (the inode allocator skips recently deleted
    # inodes, see README), i.e. the first timed install: build them in memory when possible.
    shm = Path("/dev/shm")
    scratch = Path(tempfile.mkdtemp(prefix="pmpm-bench-", dir=shm if os.access(shm, os.W_OK) else workdir))
    try:
        job_list = [(p, str(scratch / "channel"), str(scratch)) for p in planned]
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            built = [Path(b) for b in pool.map(_build_one, job_list, chunksize=16)]
        if len(set(built)) != len(planned):
            raise BenchError(f"expected {len(planned)} distinct package files, got {len(set(built))}")
        for path in built:
            (channel / path.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.move(path, channel / path.parent.name / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    info.generate_s = time.perf_counter() - start
    start = time.perf_counter()
    index_channel(channel)
    info.index_s = time.perf_counter() - start
    stamp_path.write_text(json.dumps(stamp))
    print(f"channel: generated in {info.generate_s:.1f} s, indexed in {info.index_s:.2f} s", flush=True)
    return info, names


# ------------------------------------------------------------------------------------ contenders

BARE_SCRIPT = '''\
"""The minimal py-rattler way to create an environment: the yardstick for pmpm's conda stage.

Usage: python bare_rattler.py ARGS.json [--solve-only]
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from rattler import Gateway, MatchSpec, Subdir, VirtualPackage, install, solve


async def main(args: dict, solve_only: bool) -> int:
    cache = Path(args["cache"])
    gateway = Gateway(cache_dir=cache / "repodata")
    records = await solve(
        [args["channel"]],
        args["specs"],
        gateway=gateway,
        platforms=[str(Subdir.current()), "noarch"],
        virtual_packages=VirtualPackage.detect(),
    )
    if solve_only:
        print(json.dumps(sorted(f"{r.name.normalized}-{r.version}-{r.build}" for r in records)))
    else:
        await install(
            records,
            args["prefix"],
            cache_dir=cache / "pkgs",
            show_progress=False,
            requested_specs=[MatchSpec(s)._match_spec for s in args["specs"]],
        )
    await asyncio.sleep(0.05)  # as pmpm does: let py-rattler's workers finish before exit
    return len(records)


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text()), "--solve-only" in sys.argv[2:]))
'''


class Contenders:
    """Runs the two contenders, each create in a fresh prefix with a fresh, cold package cache."""

    def __init__(self, runs: Path, bare: Path, env_file: Path, channel_url: str, specs: Sequence[str]):
        self.runs, self.bare, self.env_file = runs, bare, env_file
        self.channel_url, self.specs = channel_url, list(specs)
        self.pmpm = pmpm_command()

    def _bare_args(self, rdir: Path, prefix: Path | None) -> Path:
        path = rdir / "bare-args.json"
        cache = rdir / "bare-cache"
        data = {"channel": self.channel_url, "specs": self.specs, "cache": str(cache), "prefix": str(prefix)}
        path.write_text(json.dumps(data))
        return path

    def solve_only(self) -> list[str]:
        rdir = self.runs / "probe"
        rdir.mkdir(parents=True, exist_ok=True)
        run = run_timed([sys.executable, str(self.bare), str(self._bare_args(rdir, None)), "--solve-only"])
        _require_ok("the probe solve", run)
        return json.loads(run.stdout)

    def create(self, tag: str, who: str) -> tuple[float, Path]:
        """Time one create by ``who`` (``pmpm`` or ``bare``) under ``runs/tag``."""
        rdir = self.runs / tag
        rdir.mkdir(parents=True, exist_ok=True)
        prefix = rdir / f"{who}-env"
        if who == "pmpm":
            env = {**os.environ, "PMPM_CACHE_DIR": str(rdir / "pmpm-cache")}
            run = run_timed([*self.pmpm, "conda_install", str(prefix), "--file", str(self.env_file)], env)
            _require_ok("pmpm conda_install", run)
        else:
            run = run_timed([sys.executable, str(self.bare), str(self._bare_args(rdir, prefix))])
            _require_ok("the bare py-rattler script", run)
        return run.seconds, prefix


def check_same(pmpm_prefix: Path, bare_prefix: Path, solved: Sequence[str]) -> int:
    """Both contenders must have installed the very same packages: the solve's."""
    got_pmpm, got_bare = installed_names(pmpm_prefix), installed_names(bare_prefix)
    if got_pmpm != got_bare:
        only_p = sorted(set(got_pmpm) - set(got_bare))[:10]
        only_b = sorted(set(got_bare) - set(got_pmpm))[:10]
        raise BenchError(f"the prefixes differ: only pmpm has {only_p}, only bare has {only_b}")
    if len(got_pmpm) != len(solved):
        raise BenchError(f"the prefixes hold {len(got_pmpm)} packages, the solve gave {len(solved)}")
    return len(got_pmpm)


def write_env_file(path: Path, channel: Path, specs: Sequence[str]) -> None:
    lines = ["name: pmpm-benchmark", "channels:", f"  - {channel}", "dependencies:"]
    lines += [f"  - {spec}" for spec in specs]
    path.write_text("\n".join(lines) + "\n")


def pmpm_command() -> list[str]:
    """The installed ``pmpm`` entry point next to this interpreter: what users run."""
    script = Path(sys.executable).parent / "pmpm"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pmpm"]


@dataclass
class Run:
    seconds: float
    returncode: int
    stdout: str
    stderr: str


def run_timed(cmd: Sequence[str], env: dict[str, str] | None = None) -> Run:
    """Run ``cmd`` as a whole process and time it from spawn to exit.

    Dirty pages are flushed first, so a contender never pays for writing out what the previous
    one (or the deletion of an old prefix) left in memory: on this machine's ext4, mounted with
    ``discard``, that writeback otherwise lands on whoever runs next.
    """
    os.sync()
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), env=env, capture_output=True, text=True, check=False)
    return Run(time.perf_counter() - start, proc.returncode, proc.stdout, proc.stderr)


class BenchError(Exception):
    """Something did not work: the figures would be meaningless."""


def _require_ok(what: str, run: Run) -> None:
    if run.returncode != 0:
        raise BenchError(
            f"{what} exited with {run.returncode}\n--- stdout\n{run.stdout[-3000:]}\n"
            f"--- stderr\n{run.stderr[-3000:]}"
        )


def installed_names(prefix: Path) -> list[str]:
    """The package records of a prefix, as conda-meta file names."""
    return sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))


# ---------------------------------------------------------------------------------------- report


def stats(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt_row(label: str, values: Sequence[float]) -> str:
    s = stats(values)
    return f"  {label:<34} {s['median']:8.3f} {s['min']:8.3f} {s['max']:8.3f} {len(values):4d}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", type=int, default=2000, help="package files in the channel")
    parser.add_argument("--env-size", type=int, default=200, help="aimed-at packages in the environment")
    parser.add_argument("--top-level", type=int, default=40, help="specs in the env file")
    parser.add_argument("--repeat", type=int, default=3, help="create runs per contender")
    parser.add_argument("--noop-repeat", type=int, default=7, help="no-op re-runs (at least 5)")
    parser.add_argument(
        "--floor-repeat", type=int, default=5, help="floor runs (python importing pmpm's no-op-path modules)"
    )
    parser.add_argument("--seed", type=int, default=20240601, help="seed of the generated channel")
    parser.add_argument("--workdir", type=Path, help="keep the channel here and reuse it next time")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="workers that pack")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep-prefixes", action="store_true", help="do not delete the prefixes")
    parser.add_argument(
        "--no-wait", action="store_true", help="do not wait for ext4 to recover from the last clean-up"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.noop_repeat < 5 or args.floor_repeat < 1:
        parser.error("--repeat must be >= 1, --noop-repeat >= 5, --floor-repeat >= 1")
    return args


def bytecode_as_installed() -> None:
    """Time pmpm as installed: with its modules compiled to bytecode, as pip leaves them and as
    Python writes them on first import. A machine setting PYTHONDONTWRITEBYTECODE would charge
    every timed run for compiling whichever modules happen to have no ``.pyc`` yet."""
    import compileall

    import pmpm

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(Path(pmpm.__file__).parent), quiet=1)


def main(argv: Sequence[str] | None = None) -> int:
    global HOST_SUBDIR
    args = parse_args(argv)
    sys.path.insert(0, str(HERE.parent))  # the checkout's pmpm when run as a plain script
    bytecode_as_installed()
    from pmpm.build.package import host_subdir

    HOST_SUBDIR = host_subdir()
    if not args.no_wait:
        _wait_for_ext4()
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="pmpm-bench-")) if own_workdir else args.workdir.absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    # A new folder per run: deleting an old one now would slow the installs about to be timed.
    runs = workdir / time.strftime("runs-%Y%m%d-%H%M%S")
    try:
        return _bench(args, workdir, runs)
    except BenchError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    finally:
        for old in workdir.glob(f"{OLD_CHANNEL_PREFIX}*"):
            shutil.rmtree(old, ignore_errors=True)
        if not args.keep_prefixes:
            shutil.rmtree(workdir if own_workdir else runs, ignore_errors=True)
            CLEANUP_MARKER.write_text(f"{time.time()}\n")


def _wait_for_ext4() -> None:
    """Sleep until ext4 no longer slows file creation because of our last clean-up.

    After thousands of files are deleted, ext4's inode allocator checks every recently freed
    inode it passes (``recently_deleted`` in ``fs/ext4/ialloc.c``: 60 s, or 360 s while the inode
    table block is dirty) and skips it. Creating the ~5,000 files of one environment then costs
    about a second more, for minutes: measured here, a bare create went from 0.5 s to 1.5 s.
    Both contenders pay it, which hides pmpm's own overhead, so runs are kept that far apart.
    """
    try:
        age = time.time() - float(CLEANUP_MARKER.read_text())
    except (OSError, ValueError):
        return
    if 0 <= age < EXT4_RECENT_S:
        wait = EXT4_RECENT_S - age
        print(
            f"waiting {wait:.0f} s: the last run deleted its prefixes {age:.0f} s ago and ext4 is "
            "still slow to create files after that (--no-wait to skip; see README)",
            flush=True,
        )
        time.sleep(wait)


def _bench(args: argparse.Namespace, workdir: Path, runs: Path) -> int:
    print(f"workdir: {workdir}  (cpus: {os.cpu_count()}, python {platform.python_version()})", flush=True)
    # Whole-process timings on 2 cores move with anything else running: record how busy it was.
    load_before = os.getloadavg()[0]
    channel, names = build_channel(workdir, args.seed, args.packages, args.jobs)

    specs = choose_request(args.seed, names, args.top_level, args.env_size)
    env_file = workdir / "env.yml"
    write_env_file(env_file, channel.path, specs)
    bare = workdir / "bare_rattler.py"
    bare.write_text(BARE_SCRIPT)
    runs.mkdir(parents=True)
    contenders = Contenders(runs, bare, env_file, channel.path.as_uri(), specs)

    # untimed: what the env solves to, so the size of the work is known before timing it
    solved = contenders.solve_only()
    print(
        f"env: {len(specs)} top-level specs solve to {len(solved)} packages (aimed at {args.env_size})",
        flush=True,
    )
    # untimed: one create each first. It loads the interpreter, py-rattler and the channel into
    # the page cache for both alike, and absorbs the slow inode allocation that follows any large
    # deletion (an old workdir, a rebuilt channel) instead of charging it to the first timed run.
    warm_bare, warm_bare_prefix = contenders.create("warmup", "bare")
    warm_pmpm, warm_pmpm_prefix = contenders.create("warmup", "pmpm")
    check_same(warm_pmpm_prefix, warm_bare_prefix, solved)
    print(f"warm-up (untimed): pmpm {warm_pmpm:.2f} s, bare py-rattler {warm_bare:.2f} s", flush=True)

    # Nothing is deleted until every figure is taken, for the same reason.
    create_pmpm: list[float] = []
    create_bare: list[float] = []
    pmpm_prefix = warm_pmpm_prefix
    for i in range(args.repeat):
        # alternate who goes first, so neither always gets the warmer machine
        order = ("pmpm", "bare") if i % 2 == 0 else ("bare", "pmpm")
        results = {who: contenders.create(f"create-{i}", who) for who in order}
        (t_pmpm, pmpm_prefix), (t_bare, bare_prefix) = results["pmpm"], results["bare"]
        create_pmpm.append(t_pmpm)
        create_bare.append(t_bare)
        count = check_same(pmpm_prefix, bare_prefix, solved)
        print(
            f"create {i + 1}/{args.repeat} ({order[0]} first): pmpm {t_pmpm:.2f} s, bare py-rattler "
            f"{t_bare:.2f} s; both prefixes hold the same {count} packages",
            flush=True,
        )

    # the no-op re-run, on the prefix pmpm just built
    noop: list[float] = []
    noop_env = {**os.environ, "PMPM_CACHE_DIR": str(pmpm_prefix.parent / "pmpm-cache")}
    noop_cmd = [*contenders.pmpm, "conda_install", str(pmpm_prefix), "--file", str(env_file)]
    for _ in range(args.noop_repeat):
        run = run_timed(noop_cmd, noop_env)
        _require_ok("the no-op pmpm conda_install", run)
        if "is up to date" not in run.stdout:
            print(f"warning: the re-run did not take the no-op path: {run.stdout.strip()[-200:]}")
        noop.append(run.seconds)
    print(f"no-op: {args.noop_repeat} re-runs done", flush=True)

    floor: list[float] = []
    interpreter: list[float] = []
    for _ in range(args.floor_repeat):
        run = run_timed([sys.executable, "-c", "pass"])
        _require_ok("python -c pass", run)
        interpreter.append(run.seconds)
        run = run_timed([sys.executable, "-c", FLOOR_IMPORTS])
        _require_ok(f"python -c '{FLOOR_IMPORTS}'", run)
        floor.append(run.seconds)

    load = (load_before, os.getloadavg()[0])
    timings = {
        "pmpm_create": create_pmpm,
        "bare_create": create_bare,
        "pmpm_noop": noop,
        "floor_import_pmpm_cli": floor,
        "python_c_pass": interpreter,
    }
    return _report(args, channel, specs, solved, timings, load)


ROW_LABELS = {
    "pmpm_create": "pmpm conda_install (create, cold)",
    "bare_create": "bare py-rattler (create, cold)",
    "pmpm_noop": "pmpm conda_install (no-op re-run)",
    "floor_import_pmpm_cli": "floor: python + pmpm's no-op modules",
    "python_c_pass": "interpreter: python -c pass",
}


def _report(
    args: argparse.Namespace,
    channel: ChannelInfo,
    specs: Sequence[str],
    solved: Sequence[str],
    timings: dict[str, list[float]],
    load: tuple[float, float],
) -> int:
    med = {key: statistics.median(values) for key, values in timings.items()}
    gen = "reused" if channel.reused else f"{channel.generate_s:.1f} s"
    idx = "reused" if channel.reused else f"{channel.index_s:.2f} s"
    print()
    print(
        f"channel: {channel.packages} packages, {channel.names} names, {channel.noarch} noarch; "
        f"generate {gen}, index {idx}"
    )
    print(f"env: {len(specs)} top-level specs -> {len(solved)} packages; {os.cpu_count()} cpus")
    print(f"load average (1 min): {load[0]:.2f} before, {load[1]:.2f} after")
    if load[0] > BUSY_LOAD:
        print("warning: the machine was busy before the run: the figures are noisy; run again when idle")
    print()
    print(f"  {'whole process, seconds':<34} {'median':>8} {'min':>8} {'max':>8} {'runs':>4}")
    for key, label in ROW_LABELS.items():
        print(fmt_row(label, timings[key]))
    print()
    targets = [
        ("pmpm / bare py-rattler (create)", med["pmpm_create"] / med["bare_create"], TARGET_CREATE_RATIO, ""),
        ("no-op re-run, seconds", med["pmpm_noop"], TARGET_NOOP_SECONDS, ""),
        (
            "no-op / floor",
            med["pmpm_noop"] / med["floor_import_pmpm_cli"],
            LATER_NOOP_FLOOR_RATIO,
            "info: later target",
        ),
    ]
    for label, value, limit, note in targets:
        verdict = "PASS" if value <= limit else "FAIL"
        if note:
            verdict = f"({note}: {'met' if value <= limit else 'not met'})"
        print(f"  {label:<34} {value:8.3f}  <= {limit:<5} {verdict}")
    overhead = med["pmpm_create"] - med["bare_create"]
    min_ratio = min(timings["pmpm_create"]) / min(timings["bare_create"])
    print(f"  {'pmpm - bare (create), seconds':<34} {overhead:8.3f}  (what pmpm adds, medians)")
    print(f"  {'pmpm / bare (create), minimums':<34} {min_ratio:8.3f}  (less sensitive to other load)")

    if args.json:
        figures = {
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_average_before_after": list(load),
            },
            "channel": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(channel).items()},
            "env": {"top_level": len(specs), "solved": len(solved), "specs": list(specs)},
            "seconds": timings,
            "medians": med,
            "create_overhead_seconds": overhead,
            "create_ratio_of_minimums": min_ratio,
            "targets": [
                {
                    "name": label,
                    "value": value,
                    "limit": limit,
                    "pass": value <= limit,
                    "informational": bool(note),
                }
                for label, value, limit, note in targets
            ],
        }
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
