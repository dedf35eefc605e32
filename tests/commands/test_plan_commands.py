"""``pmpm plan --commands``: the commands each build would run (EasyBuild's extended dry run),
with the folders, prefix and environment the build would use; nothing is unpacked or built."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shlex
import subprocess
import tarfile
from pathlib import Path

from pmpm.build.preview import _archive_top
from tests.build.reprohelp import write_projects
from tests.clihelp import log_of, pmpm

#: the builder each of reprohelp's four projects is built by
BUILDERS = {"rc": "cmake", "ra": "autotools", "rm": "make", "rs": "script"}


def _projects(root: Path) -> Path:
    env = write_projects(root / "project")
    # build prefixes and folders of this test's own (they are shared by all runs): the prefix
    # is named after the recipe's text, the build folder after the build key
    for recipe in (root / "project" / "recipes").glob("*.yaml"):
        recipe.write_text(f"# {root}\n" + recipe.read_text())
    recipe = root / "project" / "recipes" / "rc.yaml"
    recipe.write_text(recipe.read_text().replace("args: [", f"args: [-DPLAN_TEST={root.name}, "))
    return env


def test_the_planned_commands_are_the_ones_the_build_runs(tmp_path: Path) -> None:
    env = _projects(tmp_path)
    prefix = tmp_path / "p"
    shown = pmpm("plan", prefix, "--file", env, "--commands", "--json")
    assert shown.code == 0, shown.text
    packages = {p["name"]: p for p in json.loads(shown.out)["compiled"]["packages"]}
    planned = {name: p["commands"] for name, p in packages.items()}
    assert {name: c["builder"] for name, c in planned.items()} == BUILDERS
    # nothing was unpacked, built or installed: no build folder, build prefix or PREFIX
    for c in planned.values():
        assert not Path(c["work"]).exists() and not Path(c["prefix"]).exists(), c
    assert not prefix.exists()
    rc = planned["rc"]
    # the tarball's single folder, inside the build folder it would be unpacked in
    assert rc["source"] == str(Path(rc["work"]) / "src" / "rc-1.0")
    assert [c["phase"] for c in rc["commands"]] == ["configure", "build", "install"]
    assert rc["commands"][0]["argv"][:3] == ["cmake", "-S", rc["source"]]
    assert f"-DPLAN_TEST={tmp_path.name}" in rc["commands"][0]["argv"]
    assert rc["commands"][2]["env"] == {"DESTDIR": str(Path(rc["work"]) / "stage")}
    assert rc["environment"]["CFLAGS"] and rc["environment"]["CPU_COUNT"].isdigit()
    # ra has only configure.ac: its scripts are made first, in the copy of the tree
    assert planned["ra"]["commands"][0]["argv"] == ["autoreconf", "-fi"]
    assert planned["ra"]["commands"][0]["cwd"] == planned["ra"]["source"]
    assert planned["rs"]["commands"][0]["argv"][:3] == ["bash", "-e", "-c"]

    text = pmpm("plan", prefix, "--file", env, "--commands")
    assert text.code == 0, text.text
    assert "commands of rc 1.0 (cmake; nothing was run):" in text.out
    assert f"    $ {shlex.join(rc['commands'][1]['argv'])}\n" in text.out
    assert f"    DESTDIR={Path(rc['work']) / 'stage'}\n" in text.out

    built = pmpm("conda_install", prefix, "--file", env)
    assert built.code == 0, built.text
    for name, c in planned.items():
        log = log_of(built.out, name).read_text()
        ran = [(m.group(1), m.group(2)) for m in re.finditer(r"^=== \S+: (\w+) \(in (.*)\)\n", log, re.M)]
        assert ran == [(p["phase"], p["cwd"]) for p in c["commands"]], name
        at = 0
        for command in c["commands"]:  # each exactly as planned, in the planned order
            at = log.index(f"$ {shlex.join(command['argv'])}\n", at) + 1

    again = pmpm("plan", prefix, "--file", env, "--commands", "--json")
    assert again.code == 0, again.text
    assert [p["commands"] for p in json.loads(again.out)["compiled"]["packages"]] == [None] * 4
    assert "commands: none (nothing would be built)" in pmpm("plan", prefix, "--file", env, "--commands").out

    # an edited local tree: its kept build folder is reused, and configure would not run again
    source = tmp_path / "project" / "src" / "ra" / "ra.c"
    source.write_text(source.read_text().replace("%s %s %s", "%s, %s, %s"))
    edited = pmpm("plan", prefix, "--file", env, "--commands", "--json")
    assert edited.code == 0, edited.text
    ra = next(p for p in json.loads(edited.out)["compiled"]["packages"] if p["name"] == "ra")
    assert ra["decision"] == "rebuild"
    # the kept copy of the tree has the `configure` autoreconf made there: not made again
    planned_ra = ra["commands"]
    steps = [(c["phase"], c["argv"][0], c["skipped"]) for c in planned_ra["commands"]]
    assert steps == [
        ("configure", f"{planned_ra['source']}/configure", True),
        ("build", "make", False),
        ("install", "make", False),
    ]
    build = Path(planned_ra["work"]) / "build"
    text = pmpm("plan", prefix, "--file", env, "--commands").out
    assert f"  configure in {build} (skipped: same command and flags as last time):" in text
    rebuilt = pmpm("conda_install", prefix, "--file", env)
    assert rebuilt.code == 0, rebuilt.text
    log = log_of(rebuilt.out, "ra").read_text()
    assert "=== ra: configure skipped: same command and flags as last time" in log
    assert "$ autoreconf" not in log and "\n$ make -j" in log


def test_without_commands_the_plan_has_no_commands_key(tmp_path: Path) -> None:
    env = _projects(tmp_path)
    shown = pmpm("plan", tmp_path / "p", "--file", env, "--json")
    assert shown.code == 0, shown.text
    assert all("commands" not in p for p in json.loads(shown.out)["compiled"]["packages"])
    assert "commands of" not in pmpm("plan", tmp_path / "p", "--file", env).out


def _tarball(path: Path, members: dict[str, str | None]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in members.items():
            item = tarfile.TarInfo(name)
            if text is None:
                item.type = tarfile.DIRTYPE
                tar.addfile(item)
            else:
                data = text.encode()
                item.size = len(data)
                tar.addfile(item, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_archive_is_seen_as_its_tree_would_be_unpacked(tmp_path: Path) -> None:
    """The top of the tree an archive unpacks to, read without unpacking it: its single folder
    (or its root), the names there, and the contents detection reads."""
    one = tmp_path / "one.tar.gz"
    _tarball(
        one,
        {
            "pkg-1.0/configure": "#!/bin/sh\n",
            "pkg-1.0/src/deep/x.c": "",
            "pkg-1.0/pyproject.toml": "[project]\n",
        },
    )
    entries, top = _archive_top(one)
    assert top == "pkg-1.0"
    assert entries == {"configure": b"", "src": None, "pyproject.toml": b"[project]\n"}
    flat = tmp_path / "flat.tar.gz"
    _tarball(flat, {"CMakeLists.txt": "project(x)\n", "lib/": None, "lib/a.c": ""})
    assert _archive_top(flat) == ({"CMakeLists.txt": b"", "lib": None}, "")


def test_a_git_source_is_seen_from_its_commit(tmp_path: Path) -> None:
    """A recipe naming no build system: the commit's files say which (here CMake), without
    exporting the commit into a build folder."""
    repo = tmp_path / "repo"
    (repo / "lib").mkdir(parents=True)
    (repo / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.13)\nproject(g C)\n")
    (repo / "lib" / "g.c").write_text("int g(void) { return 1; }\n")
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "-C", str(repo)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "g.yaml").write_text(
        f"name: g\nversion: '1.0'\nsource:\n  git: {repo.as_uri()}\n  ref: {commit.strip()}\nbuild: {{}}\n"
    )
    env = tmp_path / "env.yml"
    env.write_text("dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages: [g]\n")
    shown = pmpm("plan", tmp_path / "p", "--file", env, "--commands", "--json")
    assert shown.code == 0, shown.text
    planned = json.loads(shown.out)["compiled"]["packages"][0]["commands"]
    assert planned["builder"] == "cmake" and planned["source"] == str(Path(planned["work"]) / "src")
    assert planned["commands"][0]["argv"][:3] == ["cmake", "-S", planned["source"]]
    assert not Path(planned["work"]).exists() and not (tmp_path / "p").exists()
