"""Same inputs, same bytes: two clean builds (other $HOME, other cache folder, other prefix, a
copy of the project elsewhere) of the same env file give byte-identical packages, and
``pmpm cache check`` proves it or names what differs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pmpm.build import compare, reproducible
from pmpm.build.package import PackageMeta, pack
from pmpm.sources.cache import SourceCache
from pmpm.sources.epoch import FIXED_EPOCH, source_date_epoch
from pmpm.sources.spec import SourceSpec
from tests.build.reprohelp import PACKAGES, TARBALL_TIME, clean_build, write_projects, write_python_project
from tests.clihelp import pmpm

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "offline"


# -- the parts ---------------------------------------------------------------------------------


def test_packing_a_tree_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    """Other mtimes, permissions left by another umask, other folders: the same .conda."""
    made = []
    for run, (mode, when) in enumerate([(0o644, 1_000_000_000), (0o664, 1_600_000_000)]):
        staged = tmp_path / f"stage{run}"
        (staged / "bin").mkdir(parents=True)
        (staged / "share").mkdir()
        (staged / "share" / "b.txt").write_text("b\n")
        (staged / "share" / "a.txt").write_text("a\n")
        (staged / "bin" / "tool").write_text("#!/bin/sh\necho hi\n")
        (staged / "bin" / "tool").chmod(0o755 if run == 0 else 0o775)
        (staged / "share" / "a.txt").chmod(mode)
        (staged / "share" / "link").symlink_to("a.txt")
        for path in staged.rglob("*"):
            os.utime(path, (when, when), follow_symlinks=False)
        meta = PackageMeta("same", "1.0", "0", timestamp=1_234_567_000)
        made.append(pack(staged, meta, tmp_path / f"out{run}").read_bytes())
    assert made[0] == made[1]


def test_a_package_takes_its_time_from_source_date_epoch(tmp_path: Path, monkeypatch) -> None:
    staged = tmp_path / "stage"
    staged.mkdir()
    (staged / "f").write_text("x")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    package = pack(staged, PackageMeta("dated", "1.0", "0"), tmp_path / "out")
    out = tmp_path / "x"
    compare.unpack(package, out)
    assert json.loads((out / "info" / "index.json").read_text())["timestamp"] == 1_700_000_000_000


def test_source_date_epoch_comes_from_the_source(tmp_path: Path) -> None:
    cache = SourceCache(tmp_path / "sources")
    archive = tmp_path / "s-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, when in (("s-1.0/a", 1_600_000_000), ("s-1.0/b", 1_650_000_000)):
            (tmp_path / "member").write_text(name)
            item = tar.gettarinfo(tmp_path / "member", arcname=name)
            item.mtime = when
            with (tmp_path / "member").open("rb") as handle:
                tar.addfile(item, handle)
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    url = SourceSpec.from_dict({"url": archive.as_uri(), "sha256": sha}, where="t", base_dir=tmp_path)
    assert source_date_epoch(cache, cache.fetch(url)) == 1_650_000_000

    repo = tmp_path / "repo"
    repo.mkdir()
    who = {
        f"GIT_{role}_{what}": value
        for role in ("AUTHOR", "COMMITTER")
        for what, value in (("NAME", "t"), ("EMAIL", "t@t"))
    }
    git_env = {
        **os.environ,
        **who,
        "GIT_AUTHOR_DATE": "@1500000000 +0000",
        "GIT_COMMITTER_DATE": "@1555555555 +0000",
    }
    (repo / "f").write_text("x")
    for argv in (["init", "-q", "-b", "main"], ["add", "f"], ["commit", "-q", "-m", "one"]):
        subprocess.run(["git", *argv], cwd=repo, env=git_env, check=True)
    git = SourceSpec.from_dict({"git": str(repo), "ref": "main"}, where="t", base_dir=tmp_path)
    assert source_date_epoch(cache, cache.fetch(git)) == 1_555_555_555

    tree = SourceSpec.from_dict({"path": str(repo)}, where="t", base_dir=tmp_path)
    assert source_date_epoch(cache, cache.fetch(tree)) == FIXED_EPOCH


def test_the_build_prefix_is_the_same_for_every_cache_folder(tmp_path: Path, monkeypatch) -> None:
    places = set()
    for cache in ("a", "a-much-longer-cache-folder"):
        monkeypatch.setenv("PMPM_CACHE_DIR", str(tmp_path / cache))
        places.add(reproducible.build_place("hello", 240))
    (place,) = places
    assert place is not None and len(str(place)) == 240 and place.parent == reproducible.BUILD_ROOT
    assert (
        reproducible.prefix_map(tmp_path, "gcc") == f"-ffile-prefix-map={tmp_path}={reproducible.MAPPED_WORK}"
    )
    assert reproducible.prefix_map(tmp_path, "nvhpc") == ""  # a compiler without the option gets none


def test_the_build_folder_is_named_by_the_build_key_beside_the_build_prefix(tmp_path: Path) -> None:
    place = reproducible.build_place("hello-0123abcd", 240)
    assert place is not None
    folder = reproducible.build_folder(place, "hello", "f" * 64)
    assert folder == reproducible.BUILD_ROOT / f"hello-{'f' * 16}.build"
    assert reproducible.build_folder(tmp_path / "elsewhere", "hello", "f" * 64) is None  # in pmpm's cache
    assert reproducible.build_folder(None, "hello", "f" * 64) is None  # built in PREFIX
    taken = reproducible.BUILD_ROOT / f"hello-{'e' * 16}.build"
    taken.unlink(missing_ok=True)
    taken.symlink_to(tmp_path)  # someone's link where the folder would be: not followed
    try:
        assert reproducible.build_folder(place, "hello", "e" * 64) is None
    finally:
        taken.unlink()


def test_a_longer_prefix_takes_a_cached_build_only_when_its_binary_placeholders_fit(tmp_path: Path) -> None:
    place = tmp_path / ("p" * 60)
    staged = tmp_path / "stage"
    (staged / "bin").mkdir(parents=True)
    (staged / "share").mkdir()
    (staged / "share" / "where.txt").write_text(f"{place}/share\n")  # text: fits any prefix
    text_only = pack(staged, PackageMeta("t", "1.0", "0"), tmp_path / "out", placeholder=str(place))
    (staged / "bin" / "tool").write_bytes(b"\x7fELF\0" + f"{place}/lib".encode() + b"\0")
    binary = pack(staged, PackageMeta("b", "1.0", "0"), tmp_path / "out", placeholder=str(place))
    longer = tmp_path / ("q" * 80)
    assert reproducible.why_in_prefix(longer, place, text_only) is None
    assert reproducible.why_in_prefix(tmp_path / "short", place, binary) is None  # it fits
    why = reproducible.why_in_prefix(longer, place, binary)
    assert why is not None and why.endswith("the cached build's bin/tool has a binary placeholder")
    assert f"longer than the {len(str(place))}-character build prefix" in why
    missing = reproducible.why_in_prefix(longer, place, None)
    assert missing is not None and missing.endswith("no cached build relocates into it")
    assert reproducible.why_in_prefix(longer, None, binary) is None  # built in PREFIX anyway


def test_metadata_files_are_compared_too(tmp_path: Path) -> None:
    """``info/`` is not in ``paths.json``: a recipe or build inputs that differ are named."""
    trees = []
    for run, extra in enumerate(({}, {"x": 1})):
        staged = tmp_path / f"stage{run}"
        staged.mkdir()
        (staged / "f").write_text("same\n")
        meta = PackageMeta("m", "1.0", "0", extra=extra, timestamp=1_700_000_000_000)
        package = pack(staged, meta, tmp_path / f"out{run}")
        compare.unpack(package, tmp_path / f"u{run}")
        trees.append(tmp_path / f"u{run}")
    assert compare.info_differences(trees[0], trees[0]) == []
    lines = compare.info_differences(*trees)
    assert lines and all(line.startswith("info/") for line in lines), lines


def test_elf_files_are_compared_section_by_section(tmp_path: Path) -> None:
    objects = []
    for text in ("one", "two"):
        (tmp_path / f"{text}.c").write_text(f'const char *name(void) {{ return "{text}"; }}\n')
        subprocess.run(["gcc", "-O2", "-c", tmp_path / f"{text}.c", "-o", tmp_path / f"{text}.o"], check=True)
        objects.append((tmp_path / f"{text}.o").read_bytes())
    line = compare.describe("lib/x.o", objects[0], objects[1])
    assert line is not None and line.startswith("lib/x.o (ELF): differs in ") and ".rodata" in line
    assert ".text" not in line.split("differs in ")[1].split(", ")
    assert compare.describe("lib/x.o", objects[0], objects[0]) is None
    assert compare.describe("a.txt", b"a", None) == "a.txt: not in the rebuild"


# -- whole builds ------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_clean_builds_of_every_build_system_are_identical(tmp_path: Path) -> None:
    env = write_projects(tmp_path / "project")
    first, one = clean_build(env, tmp_path / "one")
    copy = shutil.copytree(tmp_path / "project", tmp_path / "a copy of the project")  # the same tarball URL
    second, two = clean_build(copy / env.name, tmp_path / "a-longer-folder-for-the-second-run", "elsewhere")
    assert first.code == 0, first.text
    assert second.code == 0, second.text
    assert sorted(name.split("-")[0] for name in one) == sorted(PACKAGES)
    assert one == two  # same files, same sha256
    # the tarball's time became the cmake package's; the local trees got the fixed one
    prefix = tmp_path / "one" / "p"
    assert (prefix / "share" / "rs-date.txt").read_text() == "1980-01-01\n"
    assert (prefix / "share" / "rs-prefix.txt").read_text() == f"{prefix}\n"
    out = subprocess.run([prefix / "bin" / "rc-tool"], capture_output=True, text=True, check=True).stdout
    assert out.startswith(f"{reproducible.MAPPED_WORK}/src/rc-1.0/rc.c 1 ")
    assert str(tmp_path) not in out
    # the flags name the build folder, which is the same in both runs: beside the build prefix
    flags = (prefix / "share" / "rc-flags.txt").read_text()
    assert f"-ffile-prefix-map={reproducible.BUILD_ROOT}/rc-" in flags
    assert str(tmp_path / "one" / "cache") not in flags and f"-I{prefix}/include" in flags  # relocated
    cmake = next(n for n in one if n.startswith("rc-"))
    unpacked = compare.unpack(tmp_path / "one" / "cache" / "channel" / "linux-64" / cmake, tmp_path / "u")
    assert unpacked  # a genuine package
    index = json.loads((tmp_path / "u" / "info" / "index.json").read_text())
    assert index["timestamp"] == TARBALL_TIME * 1000


@pytest.mark.slow
def test_the_readme_example_rebuilds_identically_and_the_check_names_an_altered_file(tmp_path: Path) -> None:
    example = tmp_path / "offline"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("channel"))
    made = subprocess.run([sys.executable, example / "make_channel.py"], capture_output=True, text=True)
    assert made.returncode == 0, made.stdout + made.stderr
    env = example / "environment.yml"
    first, one = clean_build(env, tmp_path / "one")
    second, two = clean_build(env, tmp_path / "two", prefix_name="demo")
    assert first.code == 0, first.text
    assert second.code == 0, second.text
    saxpy = [name for name in one if name.startswith("saxpy-")]
    assert len(saxpy) == 1 and one[saxpy[0]] == two[saxpy[0]]

    prefix, cache = tmp_path / "one" / "p", {"PMPM_CACHE_DIR": str(tmp_path / "one" / "cache")}
    checked = pmpm("cache", "check", prefix, env=cache)
    assert checked.code == 0, checked.text
    assert (
        f"saxpy 1.0: the rebuild is identical to the recorded package (sha256 {one[saxpy[0]]})" in checked.out
    )
    assert "1 of 1 compiled packages are identical when rebuilt" in checked.out

    tool = prefix / "bin" / "saxpy"
    data = bytearray(tool.read_bytes())
    at = data.index(b"saxpy built for ")  # a string in .rodata
    data[at : at + 5] = b"SAXPY"
    tool.write_bytes(bytes(data))
    altered = pmpm("cache", "check", prefix, "saxpy", env=cache)
    assert altered.code == 1, altered.text
    assert f"saxpy 1.0: files in {prefix} that differ from the rebuild:" in altered.out
    assert "  bin/saxpy (ELF): differs in .rodata\n" in altered.out


#: a program with its prefix compiled in as a C string: a binary-mode placeholder
WHERE_C = '#include <stdio.h>\nint main(void) { printf("%s\\n", WHERE); return 0; }\n'
WHERE_SCRIPT = """    mkdir -p $STAGE_PREFIX/bin
    $CC -DWHERE='"{{ prefix }}/share/rb"' -o $STAGE_PREFIX/bin/rb-where $SRC_DIR/rb.c
"""


@pytest.mark.slow
def test_a_prefix_longer_than_the_build_prefix_takes_the_cached_build_when_it_fits(tmp_path: Path) -> None:
    env = write_projects(tmp_path / "project")
    (tmp_path / "project" / "src" / "rb").mkdir()
    rb = tmp_path / "project" / "src" / "rb" / "rb.c"
    rb.write_text(WHERE_C)
    (env.parent / "recipes" / "rb.yaml").write_text(
        "name: rb\nversion: '1.0'\nsource: {path: ../src/rb}\nbuild:\n  system: script\n"
        f"  script: |\n{WHERE_SCRIPT}"
    )
    env.write_text("dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages: [rc, rb]\n")
    own = {"HOME": str(tmp_path / "home"), "PMPM_CACHE_DIR": str(tmp_path / "cache")}
    short = tmp_path / "short"
    long = tmp_path / ("l" * 120) / ("o" * 120) / "prefix"
    assert len(str(long)) > 240
    first = pmpm("conda_install", short, "--file", env, env=own, timeout=1800)
    assert first.code == 0, first.text
    built = sorted(p.name for p in (tmp_path / "cache" / "channel").glob("*/rc-*.conda"))
    assert len(built) == 1
    second = pmpm("conda_install", long, "--file", env, env=own, timeout=1800)
    assert second.code == 0, second.text
    # rc (relative RPATHs, no binary placeholder) comes from the cache: one build for both
    assert "rc 1.0: from cache" in second.out, second.out
    assert sorted(p.name for p in (tmp_path / "cache" / "channel").glob("*/rc-*.conda")) == built
    for prefix in (short, long):
        out = subprocess.run([prefix / "bin" / "rc-tool"], capture_output=True, text=True, check=True).stdout
        assert out.startswith(f"{reproducible.MAPPED_WORK}/src/rc-1.0/rc.c 1 ")
    # rb has its prefix compiled in (a binary placeholder, 240 characters): built in the long PREFIX
    assert (
        "rb 1.0: new (built in PREFIX: it is longer than the 240-character build prefix and the cached "
        "build's bin/rb-where has a binary placeholder)" in second.out
    ), second.out
    for prefix in (short, long):
        out = subprocess.run([prefix / "bin" / "rb-where"], capture_output=True, text=True, check=True).stdout
        assert out == f"{prefix}/share/rb\n"
    # the next run keeps both: the cached rc and the rb built in PREFIX are up to date
    rb.write_text(WHERE_C.replace("%s", "at %s"))
    third = pmpm("conda_install", long, "--file", env, env=own, timeout=1800)
    assert third.code == 0, third.text
    assert "rc 1.0: up to date" in third.out and "rb 1.0: rebuild (" in third.out, third.out
    assert "built in PREFIX: it is longer" in third.out
    fourth = pmpm("plan", long, "--file", env, env=own)
    assert fourth.code == 0, fourth.text
    assert "rc 1.0: up to date" in fourth.out and "rb 1.0: up to date" in fourth.out, fourth.out


@pytest.mark.slow
def test_two_clean_builds_of_a_python_c_extension_are_identical(tmp_path: Path, demo_channel) -> None:
    env = write_python_project(tmp_path / "project", str(demo_channel.path))
    first, one = clean_build(env, tmp_path / "one")
    copy = shutil.copytree(tmp_path / "project", tmp_path / "a copy of the project")
    second, two = clean_build(copy / env.name, tmp_path / "a-longer-folder-for-the-second-run", "elsewhere")
    assert first.code == 0, first.text
    assert second.code == 0, second.text
    built = [name for name in one if name.startswith("rp-")]
    assert len(built) == 1 and one[built[0]] == two[built[0]], second.out
    prefix = tmp_path / "one" / "p"
    out = subprocess.run([prefix / "bin" / "rp-where"], capture_output=True, text=True, check=True).stdout
    assert out == "rpext.c\n"  # the console script runs the extension
    (ext,) = prefix.glob("lib/python*/site-packages/rpext*.so")
    debug = ext.read_bytes()  # built with -g: the build folder is mapped out of it
    assert f"{reproducible.MAPPED_WORK}/src".encode() in debug and str(tmp_path).encode() not in debug
    files = compare.unpack(tmp_path / "one" / "cache" / "channel" / "linux-64" / built[0], tmp_path / "u")
    assert not [rel for rel in files if rel.endswith(".pyc")]  # no bytecode naming the staging folder
    assert any(rel.endswith(".dist-info/RECORD") for rel in files)
