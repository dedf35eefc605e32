"""How reproducible are pmpm's builds? Each package built twice from clean caches, compared.

Every built-in recipe whose source this machine has (pmpm's source cache is empty in each run, so
the tarballs come from the folders in ``--mirror``, by default the Debian orig tarballs the
tests keep) and the test projects of ``tests/build/reprohelp.py`` (cmake, autotools, make,
script; and python, a C extension for the ``python`` package of the tests' demo channel) are
built by ``pmpm conda_install --offline`` twice, each time with a new ``$HOME``, a new
``PMPM_CACHE_DIR`` and a new prefix of another length. Then the two ``.conda`` files of each
package are compared (sha256), and file by file (``info/paths.json``). Printed: the share of
identical packages and files, and every exception with its reason (a recipe that could not be
built here says why; a package that differs names its files and ELF sections).

Run it from the repository root with the venv's interpreter::

    python benchmarks/reproducible.py [--workdir DIR] [--recipes cjson,serd,...] [--mirror DIR]

Recipes built by default: the quick ones (cjson, serd); ``--recipes all`` tries every built-in
recipe (fftw takes minutes on 2 cores). Exit code 0 when every package that built is identical.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pmpm.build import compare  # noqa: E402
from tests.build.reprohelp import PACKAGES, clean_build, write_projects, write_python_project  # noqa: E402
from tests.factories import build_demo_channel  # noqa: E402

RECIPES = ROOT / "pmpm" / "recipes"
QUICK = ("cjson", "serd")
DEBIAN_ORIGS = Path.home() / ".cache" / "pmpm-test-debsrc" / "pkgs"


def _mirrors(given: list[Path]) -> list[Path]:
    if given:
        return given
    return sorted(p for p in DEBIAN_ORIGS.glob("*") if p.is_dir()) if DEBIAN_ORIGS.is_dir() else []


def _write_env(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True)
    env = folder / "env.yml"
    env.write_text(f"dependencies: []\n_pmpm:\n  packages: [{name}]\n")
    return env


def _compare_runs(label: str, runs: list[Path], built: list[dict[str, str]], scratch: Path) -> dict:
    """Packages and files of two runs compared; the lines that explain each difference."""
    names = sorted(built[0].keys() | built[1].keys())
    result = {"packages": 0, "same_packages": 0, "files": 0, "same_files": 0, "notes": []}
    for name in names:
        result["packages"] += 1
        if name not in built[0] or name not in built[1]:
            result["notes"].append(f"{label}: {name} was built by one run only (the build key differs)")
            continue
        found = [next((run / "cache" / "channel").glob(f"*/{name}")) for run in runs]
        trees = [scratch / f"{i}-{name}" for i in range(2)]
        items = [compare.unpack(package, tree) for package, tree in zip(found, trees, strict=True)]
        same = built[0][name] == built[1][name]
        result["same_packages"] += same
        noted = len(result["notes"])
        for rel in sorted(items[0].keys() | items[1].keys()):
            result["files"] += 1
            line = compare.describe(rel, compare.content(trees[0], rel), compare.content(trees[1], rel))
            if line is None:
                result["same_files"] += 1
            else:
                result["notes"].append(f"{label}: {name}: {line}")
        result["notes"] += [f"{label}: {name}: {line}" for line in compare.info_differences(*trees)]
        if not same and len(result["notes"]) == noted:
            result["notes"].append(f"{label}: {name}: the archives differ, every file in them is the same")
    return result


def _build_twice(label: str, env: Path, work: Path, mirrors: list[Path]) -> dict:
    extra = {"PMPM_SOURCE_MIRRORS": ":".join(map(str, mirrors))}
    runs = [work / "one", work / "a-longer-folder-name-for-run-two"]
    outcomes = [
        clean_build(env, run, name, extra, "--offline")
        for run, name in zip(runs, ("p", "prefix-2"), strict=True)
    ]
    for result, _ in outcomes:
        if result.code != 0:
            reason = (result.err.strip().splitlines() or ["(no message)"])[0]
            return {"packages": 0, "same_packages": 0, "files": 0, "same_files": 0,
                    "notes": [f"{label}: not built here: {reason}"], "skipped": True}  # fmt: skip
    return _compare_runs(label, runs, [built for _, built in outcomes], work / "unpacked")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="keep the builds here (default: a temporary folder)")
    parser.add_argument("--recipes", default=",".join(QUICK), help="comma-separated names, or 'all'")
    parser.add_argument(
        "--mirror", type=Path, action="append", default=[], help="a folder of source tarballs"
    )
    opts = parser.parse_args(argv)
    names = (
        sorted(p.stem for p in RECIPES.glob("*.yaml")) if opts.recipes == "all" else opts.recipes.split(",")
    )
    work = opts.workdir or Path(tempfile.mkdtemp(prefix="pmpm-repro-"))
    mirrors = _mirrors(opts.mirror)
    results = []
    projects = write_projects(work / "projects")
    label = f"test projects ({', '.join(PACKAGES)})"
    results.append(_build_twice(label, projects, work / "test-projects", mirrors))
    demo = build_demo_channel(work / "demo")  # its `python`: a venv of this interpreter
    python_project = write_python_project(work / "python-project", str(demo.path))
    results.append(_build_twice("test project (python: rp)", python_project, work / "test-python", mirrors))
    for name in names:
        env = _write_env(work / "envs" / name, name)
        results.append(_build_twice(f"recipe {name}", env, work / name, mirrors))
    total = {k: sum(r[k] for r in results) for k in ("packages", "same_packages", "files", "same_files")}
    print(json.dumps({"work": str(work), **total}, indent=1))
    share = lambda a, b: f"{100 * a / b:.0f}%" if b else "n/a"  # noqa: E731
    for what, same, of in (("packages", "same_packages", "packages"), ("files", "same_files", "files")):
        print(f"identical {what + ':':<10} {total[same]} of {total[of]} ({share(total[same], total[of])})")
    notes = [n for r in results for n in r["notes"]]
    print("exceptions:" if notes else "exceptions: none")
    for note in notes:
        print(f"  {note}")
    if opts.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if total["same_packages"] == total["packages"] else 1


if __name__ == "__main__":
    sys.exit(main())
