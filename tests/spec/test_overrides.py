"""A `_pmpm.packages` entry's keys reach the build, or are refused naming the env file's line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.clihelp import pmpm

TOOL = "#!/bin/sh\necho {}\n"


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A git repository with a tool saying ``one`` on ``main`` and ``three`` on branch ``toast3``
    (and a tag ``v2`` on a second commit of main); returns it and each ref's commit."""
    repo = tmp_path / "toast.git"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "tool").write_text(TOOL.format("one"))
    _git(repo, "add", "tool")
    _git(repo, "commit", "-q", "-m", "one")
    commits = {"main": _git(repo, "rev-parse", "HEAD")}
    _git(repo, "checkout", "-q", "-b", "toast3")
    (repo / "tool").write_text(TOOL.format("three"))
    _git(repo, "commit", "-q", "-am", "three")
    commits["toast3"] = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    return repo, commits


def _recipes(tmp_path: Path, source: str) -> Path:
    recipes = tmp_path / "recipes"
    recipes.mkdir(exist_ok=True)
    (recipes / "toast.yaml").write_text(
        "name: toast\nversion: '1.0'\n"
        f"source: {source}\n"
        "options: {greeting: hi}\n"
        "build:\n  system: script\n  script: |\n"
        "    mkdir -p $STAGE_PREFIX/bin\n    install -m 755 $SRC_DIR/tool $STAGE_PREFIX/bin/tool\n"
    )
    return recipes


def _env(tmp_path: Path, packages: str) -> Path:
    env = tmp_path / "env.yml"
    env.write_text("dependencies: []\n_pmpm:\n  recipes: [recipes]\n" + packages)
    return env


def _tool(prefix: Path) -> str:
    return subprocess.run(
        [prefix / "bin" / "tool"], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.parametrize(
    "packages",
    [
        "  packages:\n    - toast: {ref: toast3}\n",
        "  dependencies: [toast=toast3]\n",  # the original pmpm's spelling
    ],
)
def test_a_lone_ref_builds_that_ref_of_the_recipes_git_source(tmp_path, repo, packages) -> None:
    path, commits = repo
    _recipes(tmp_path, f"{{git: 'file://{path}', ref: main}}")
    env = _env(tmp_path, packages)
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert _tool(prefix) == "three"
    builds = json.loads((prefix / "conda-meta" / "pmpm" / "builds" / "toast.json").read_text())
    assert builds["source"] == f"git:{commits['toast3']}"
    assert builds["record"]["source"]["ref"] == "toast3"
    record = json.loads((prefix / "conda-meta" / "pmpm" / "record.json").read_text())
    compiled = [c for c in record["compiled_packages"] if c["name"] == "toast"]
    assert compiled[0]["source"]["identity"] == f"git:{commits['toast3']}"

    # back to the recipe's own ref: the plan says the source changed, the build follows
    env.write_text("dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages: [toast]\n")
    plan = pmpm("plan", prefix, "--file", env)
    assert f"source changed (git:{commits['toast3']} -> git:{commits['main']})" in plan.out, plan.text
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    assert _tool(prefix) == "one"


def test_git_url_and_sha256_overrides_reach_the_build(tmp_path, repo) -> None:
    path, commits = repo
    # the recipe builds a tarball; the env file points it at the git repository instead
    tarball = tmp_path / "toast-1.0.tar.gz"
    (tmp_path / "t" / "toast-1.0").mkdir(parents=True)
    (tmp_path / "t" / "toast-1.0" / "tool").write_text(TOOL.format("tarball"))
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tmp_path / "t" / "toast-1.0", arcname="toast-1.0")
    sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
    _recipes(tmp_path, f"{{url: 'file://{tarball}', sha256: {sha}}}")
    env = _env(tmp_path, f"  packages:\n    - toast: {{git: 'file://{path}', ref: toast3}}\n")
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert _tool(prefix) == "three"
    builds = json.loads((prefix / "conda-meta" / "pmpm" / "builds" / "toast.json").read_text())
    assert builds["source"] == f"git:{commits['toast3']}"

    # a `sha256:` alone pins the recipe's tarball: a wrong one is the download's error, not ignored
    env.write_text(
        "dependencies: []\n_pmpm:\n  recipes: [recipes]\n  packages:\n    - toast: {sha256: "
        + "0" * 64
        + "}\n"
    )
    wrong = pmpm("conda_install", prefix, "--file", env)
    assert wrong.code == 1 and "0" * 64 in wrong.err, wrong.text
    assert _tool(prefix) == "three"


@pytest.mark.parametrize(
    ("entry", "said"),
    [
        (
            "{ref: toast3}",
            "`ref: toast3` applies to a git source, but recipe 'toast' builds from a url source",
        ),
        ("{version: '9.9'}", "knows versions 1.0, not 9.9, and nothing pins that version"),
        ("{colour: red}", "has no option `colour`"),
        ("{url: 'file:///x.tar.gz'}", "a `url` source needs `sha256`"),
        ("{git: 'file:///x', sha256: " + "1" * 64 + "}", "`sha256` does not apply to a `git` source"),
        ("{pypi: 'x==1', ref: main}", "`ref` does not apply to a `pypi` source"),
    ],
)
def test_keys_that_cannot_apply_are_refused_with_the_line(tmp_path, entry, said) -> None:
    _recipes(tmp_path, "{url: 'file:///nowhere/toast-1.0.tar.gz', sha256: " + "a" * 64 + "}")
    env = _env(tmp_path, f"  packages:\n    - toast: {entry}\n")
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1
    assert said in result.err, result.err
    assert f"{env}:5" in result.err, result.err
    assert "Traceback" not in result.err
    assert not prefix.exists()


def test_a_git_folder_in_the_env_file_is_relative_to_it(tmp_path, repo) -> None:
    path, commits = repo
    _recipes(tmp_path, "{path: ../nowhere}")
    env = _env(tmp_path, f"  packages:\n    - toast: {{git: {path.name}, ref: toast3}}\n")
    prefix = tmp_path / "p"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert _tool(prefix) == "three"
    builds = json.loads((prefix / "conda-meta" / "pmpm" / "builds" / "toast.json").read_text())
    assert builds["source"] == f"git:{commits['toast3']}"
