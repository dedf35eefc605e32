"""``--json`` on every reporting command, ``plan --check``, and ``host``/``recipes list`` details.

One small project (two recipes built with the machine's gcc, conda packages from the demo
channel) is installed once; each command's JSON is read back and checked against what the
prefix, its record and the text form say.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import archspec.cpu
import pytest

from pmpm.commands import catalog
from tests.clihelp import REPO, pmpm
from tests.recordhelp import make_project, record_of

DOCS = REPO / "docs" / "json.md"


def _json(*args: str | Path, env: dict[str, str] | None = None, code: int = 0) -> dict:
    result = pmpm(*args, "--json", env=env)
    assert result.code == code, result.text
    document = json.loads(result.out)
    assert document["format"] == 1, document
    return document


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> dict[str, str]:
    """A HOME (and Jupyter folder) of the module's own, so installs register nothing of the user's."""
    home = tmp_path_factory.mktemp("home")
    return {"HOME": str(home), "JUPYTER_DATA_DIR": str(home / "jupyter")}


@pytest.fixture(scope="module")
def project(tmp_path_factory, demo_channel, home):
    project = make_project(tmp_path_factory.mktemp("json"), demo_channel.path)
    prefix = project.root / "p"
    result = pmpm("conda_install", prefix, "--file", project.env, env=home)
    assert result.code == 0, result.text
    return project, prefix


def test_every_json_command_is_documented():
    """docs/json.md has a section for each command that takes --json, naming its keys."""
    text = DOCS.read_text()
    sections = set(re.findall(r"^## `pmpm ([a-z ]+)", text, flags=re.M))
    with_json = {" ".join(c.words) for c in catalog.COMMANDS if any(p.name == "as_json" for p in c.params)}
    assert with_json == sections
    for name in (
        "plan",
        "diff",
        "host",
        "cache list",
        "recipes list",
        "recipes show",
        "record",
        "verify",
        "list",
    ):
        assert name in with_json


def test_plan_json_and_check_on_an_up_to_date_prefix(project, home):
    project, prefix = project
    document = _json("plan", prefix, "--file", project.env, "--check", env=home)
    assert document["command"] == "plan" and document["exists"] is True
    assert document["changes"] is False
    assert document["conda"]["changes"] == []
    installed = {json.loads(p.read_text())["name"] for p in (prefix / "conda-meta").glob("*.json")}
    compiled = {p["name"]: p for p in document["compiled"]["packages"]}
    assert set(compiled) == {"greet", "hello"} <= installed
    assert {p["decision"] for p in compiled.values()} == {"up to date"}
    keys = {p["name"]: p["build_key"] for p in record_of(prefix)["compiled_packages"]}
    assert {n: p["build_key"] for n, p in compiled.items()} == keys
    text = pmpm("plan", prefix, "--file", project.env, "--check", env=home)
    assert text.code == 0 and "nothing would change" in text.out, text.text


def test_plan_check_exits_1_when_a_source_changed(project, home, tmp_path):
    project, prefix = project
    before = project.greet_c.read_text()
    project.greet_c.write_text(before.replace("hello, world", "hello, plan"))
    try:
        document = _json("plan", prefix, "--file", project.env, "--check", env=home, code=1)
        decisions = {p["name"]: p["decision"] for p in document["compiled"]["packages"]}
        assert decisions["greet"] == "rebuild" and document["changes"] is True
        assert pmpm("plan", prefix, "--file", project.env, env=home).code == 0  # without --check: 0
    finally:
        project.greet_c.write_text(before)


def test_plan_on_a_missing_prefix_says_it_would_create_it(project, home, tmp_path):
    project, _ = project
    only_compiled = tmp_path / "env.yml"  # no conda package at all: the case that said "0 packages"
    only_compiled.write_text(
        f"channels: [{project.channel}]\ndependencies: []\n"
        f"_pmpm:\n  recipes: [{project.root / 'recipes'}]\n  packages: [greet]\n"
    )
    new = tmp_path / "new"
    result = pmpm("plan", new, "--file", only_compiled, "--check", env=home)
    assert result.code == 1, result.text
    assert f"would create {new}" in result.out and "already has" not in result.out
    assert "greet 1.0: " in result.out
    document = _json("plan", new, "--file", only_compiled, "--check", env=home, code=1)
    assert document["exists"] is False and document["changes"] is True
    assert not new.exists()


def test_record_verify_and_diff_json(project, home, tmp_path):
    project, prefix = project
    record = _json("record", prefix)
    assert record["environment_id"] == record_of(prefix)["environment_id"]
    verified = _json("verify", prefix)
    assert verified["command"] == "verify" and verified["ok"] is True and verified["problems"] == []
    same = _json("diff", prefix, prefix / "conda-meta" / "pmpm" / "record.json")
    assert same["same"] is True and same["differences"] == []

    copy = tmp_path / "copy"
    shutil.copytree(prefix, copy, symlinks=True)
    where = copy / "share" / "hello" / "where.txt"
    where.write_text("edited\n")
    broken = _json("verify", copy, code=1)
    assert broken["ok"] is False
    assert {"kind": "modified", "what": "share/hello/where.txt"}.items() <= broken["problems"][0].items()

    other = tmp_path / "other"
    env = project.root / "other.yml"
    env.write_text(f"channels: [{project.channel}]\ndependencies: [demo-data]\n")
    assert pmpm("conda_install", other, "--file", env, env=home).code == 0
    differ = _json("diff", prefix, other, code=1)
    assert differ["same"] is False
    changes = {(d["kind"], d["text"].split()[0]) for d in differ["differences"]}
    assert ("removed", "greet") in changes and ("removed", "libdemo") in changes
    assert differ["b"]["environment_id"] == record_of(other)["environment_id"]


def test_cache_list_and_recipes_json(project):
    project, prefix = project
    cached = _json("cache", "list")
    # the session's cache also holds other tests' builds of the same names: find this one's
    built = {(p["name"], p["build"]): p for p in cached["packages"]}
    for package in record_of(prefix)["compiled_packages"]:
        entry = built[(package["name"], package["build"])]
        assert Path(entry["path"]).stat().st_size == entry["size"]
    recipes = _json("recipes", "list", "-r", project.root / "recipes")
    rows = {r["name"]: r for r in recipes["recipes"]}
    assert rows["greet"]["version"] == "1.0" and rows["greet"]["system"] == "make"
    assert rows["fftw"]["origin"].endswith("fftw.yaml")  # the built-ins too
    shown = _json("recipes", "show", "hello", "-r", project.root / "recipes")
    assert shown["text"] == (project.root / "recipes" / "hello.yaml").read_text()


def test_host_json_matches_the_text_form():
    document = _json("host")
    text = pmpm("host").out
    assert re.search(rf"^target\s+{document['target']}$", text, flags=re.M)
    assert document["target"] == archspec.cpu.host().name and document["runs_here"] is True
    for compiler in document["compilers"].values():
        assert Path(compiler["path"]).exists()
    assert _json("host", "--targets")["targets"] == sorted(archspec.cpu.TARGETS)


def test_host_shows_a_target_this_machine_cannot_run():
    here = archspec.cpu.host()
    foreign = next(
        t for t in archspec.cpu.TARGETS.values() if t.family != here.family and t.vendor != "generic"
    )
    result = pmpm("host", "--target", foreign.name)
    assert result.code == 0, result.text
    assert re.search(rf"^target\s+{foreign.name}$", result.out, flags=re.M)
    assert re.search(r"^runs here\s+no", result.out, flags=re.M)
    document = _json("host", "--target", foreign.name)
    assert document["runs_here"] is False and document["family"] == foreign.family.name
    assert document["detected"] == here.name


def test_recipes_list_shows_a_plugin_recipes_distribution_version(tmp_path):
    """A plugin installed as a distribution (entry point ``pmpm.recipes``) shows its release."""
    site = tmp_path / "site"
    (site / "demo_recipes").mkdir(parents=True)
    (site / "demo_recipes" / "__init__.py").write_text(
        "def tool(context):\n"
        "    return {'name': 'tool', 'version': '9', 'source': {'path': '.'}, 'build': {'system': 'make'}}\n"
    )
    info = site / "demo_recipes-3.4.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: demo-recipes\nVersion: 3.4.5\n")
    (info / "entry_points.txt").write_text("[pmpm.recipes]\ntool = demo_recipes:tool\n")
    env = {"PYTHONPATH": f"{site}:{REPO}"}
    result = pmpm("recipes", "list", env=env)
    assert result.code == 0, result.text
    (line,) = [line for line in result.out.splitlines() if line.startswith("tool ")]
    assert line.split()[1] == "3.4.5" and "demo-recipes 3.4.5" in line
    rows = {r["name"]: r for r in _json("recipes", "list", env=env)["recipes"]}
    assert rows["tool"]["plugin"] == {"name": "demo-recipes", "version": "3.4.5"}
