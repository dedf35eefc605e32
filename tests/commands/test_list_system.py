"""``pmpm list`` on a system_install root: both stacks, as conda lists each, with the compiled
packages marked with their target, source and build key from the environment's record (at
``ROOT/.pmpm``), whichever of the environment's folders is given."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.clihelp import installed, pmpm

MAKEFILE = """\
greet: greet.c
\t$(CC) $(CFLAGS) -o $@ greet.c $(LDFLAGS)
install: greet
\tmkdir -p $(DESTDIR)$(PREFIX)/bin
\tcp greet $(DESTDIR)$(PREFIX)/bin/
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory, demo_channel) -> Path:
    """A system_install of one compiled package (``greet``, built by make from a local tree)
    beside a conda stack of two demo packages."""
    base = tmp_path_factory.mktemp("list-system")
    (base / "src" / "greet").mkdir(parents=True)
    (base / "src" / "greet" / "greet.c").write_text(
        '#include <stdio.h>\nint main(void) { return puts("hi") < 0; }\n'
    )
    (base / "src" / "greet" / "Makefile").write_text(MAKEFILE)
    (base / "recipes").mkdir()
    (base / "recipes" / "greet.yaml").write_text(
        "name: greet\nversion: '1.0'\nsource: {path: ../src/greet}\nbuild: {system: make}\n"
    )
    env = base / "env.yml"
    env.write_text(
        f"channels: [{demo_channel.path}]\ndependencies: [libdemo, demo-data]\n"
        "_pmpm:\n  recipes: [recipes]\n  packages: [greet]\n"
    )
    result = pmpm("system_install", base / "stack", "--file", env)
    assert result.code == 0, result.text
    return base / "stack"


def _record(root: Path) -> dict:
    return json.loads((root / ".pmpm" / "record.json").read_text())


def _rows(out: str) -> dict[str, list[str]]:
    """The text listing, by stack: each stack's header, then its rows."""
    stacks: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("# packages in environment at "):
            current = line.removeprefix("# packages in environment at ").rstrip(":")
            stacks[current] = []
        elif current and line and not line.startswith("#"):
            stacks[current].append(line)
    return stacks


@pytest.mark.parametrize("given", ["root", "compile", "conda"])
def test_list_shows_both_stacks_and_marks_the_compiled_packages(root, given):
    where = root if given == "root" else root / given
    compiled, conda = root / "compile", root / "conda"
    result = pmpm("list", where)
    assert result.code == 0, result.text
    rows = _rows(result.out)
    assert list(rows) == [str(compiled), str(conda)]
    for stack in (compiled, conda):
        listed = {r.split()[0]: f"{r.split()[1]}-{r.split()[2]}" for r in rows[str(stack)]}
        assert listed == installed(stack)
    assert set(installed(compiled)) == {"greet"} and set(installed(conda)) == {"libdemo", "demo-data"}
    (package,) = _record(root)["compiled_packages"]
    (line,) = rows[str(compiled)]
    assert "pmpm (compiled)" in line
    assert f"target={package['target']}" in line and f"key={package['build_key']}" in line
    assert f"source={package['source']['identity']}" in line
    assert package["source"]["identity"].startswith("tree:")
    assert all("key=" not in r for r in rows[str(conda)])


@pytest.mark.parametrize("given", ["root", "conda"])
def test_list_json_of_a_system_install(root, given):
    where = root if given == "root" else root / given
    result = pmpm("list", where, "--json")
    assert result.code == 0, result.text
    document = json.loads(result.out)
    assert document["format"] == 1 and document["command"] == "list"
    assert document["prefix"] == str(where)
    assert document["stacks"] == [str(root / "compile"), str(root / "conda")]
    for stack in document["stacks"]:
        listed = {
            p["name"]: f"{p['version']}-{p['build']}" for p in document["packages"] if p["stack"] == stack
        }
        assert listed == installed(Path(stack))
    (package,) = _record(root)["compiled_packages"]
    marks = {p["name"]: p["compiled"] for p in document["packages"]}
    assert marks["libdemo"] is None and marks["demo-data"] is None
    assert marks["greet"]["target"] == package["target"]
    assert marks["greet"]["build_key"] == package["build_key"]
    assert marks["greet"]["source"] == package["source"]["identity"]
    assert Path(marks["greet"]["recipe"]).name == "greet.yaml"


def test_list_from_a_conda_stack_elsewhere_and_without_one(tmp_path, root):
    """``--conda-prefix P`` puts the conda stack outside ROOT: listing P finds the whole
    environment; ``conda: false`` leaves only the compiled stack to list."""
    env = root.parent / "env.yml"
    elsewhere, conda = tmp_path / "elsewhere", tmp_path / "envs" / "base"
    assert pmpm("system_install", elsewhere, "--file", env, "--conda-prefix", conda).code == 0
    document = json.loads(pmpm("list", conda, "--json").out)
    assert document["stacks"] == [str(elsewhere / "compile"), str(conda)]
    assert {p["name"]: p["stack"] for p in document["packages"]} == {
        "greet": str(elsewhere / "compile"),
        "libdemo": str(conda),
        "demo-data": str(conda),
    }

    alone = tmp_path / "alone"
    spec = tmp_path / "alone.yml"
    spec.write_text(
        env.read_text().replace("dependencies: [libdemo, demo-data]", "dependencies: []") + "  conda: false\n"
    )
    (tmp_path / "recipes").symlink_to(root.parent / "recipes")
    (tmp_path / "src").symlink_to(root.parent / "src")
    result = pmpm("system_install", alone, "--file", spec)
    assert result.code == 0, result.text
    listed = pmpm("list", alone)
    assert list(_rows(listed.out)) == [str(alone / "compile")]
    (line,) = _rows(listed.out)[str(alone / "compile")]
    assert line.startswith("greet ") and "target=" in line and "target=?" not in line
