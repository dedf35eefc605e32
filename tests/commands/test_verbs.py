"""``pmpm list``, ``pmpm remove``, ``pmpm clean`` and the registration in ``~/.conda/environments.txt``
that the real conda (``../shared/vendor``) reads for ``conda env list``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clihelp import installed, pmpm, tree_digest, write_env
from tests.real_conda import build_real_conda
from tests.recordhelp import make_project, record_of


@pytest.fixture(scope="session")
def real_conda(tmp_path_factory):
    return build_real_conda(tmp_path_factory)


def _home(root: Path) -> dict[str, str]:
    """A HOME and Jupyter folder of the test's own: what an install registers lands there."""
    (root / "home").mkdir(exist_ok=True)
    home = {"HOME": str(root / "home"), "JUPYTER_DATA_DIR": str(root / "home" / "jupyter")}
    return {**home, "CONDA_REGISTER_ENVS": "true"}  # even if the suite turns registration off


def _environments_txt(env: dict[str, str]) -> list[str]:
    path = Path(env["HOME"]) / ".conda" / "environments.txt"
    return path.read_text().splitlines() if path.exists() else []


def _pmpm_without_terminal(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pmpm", *map(str, args)],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory, demo_channel):
    root = tmp_path_factory.mktemp("verbs")
    project = make_project(root, demo_channel.path)
    env = _home(root)
    prefix = root / "p"
    result = pmpm("conda_install", prefix, "--file", project.env, env=env)
    assert result.code == 0, result.text
    return project, prefix, env


def test_list_shows_what_conda_meta_holds_and_marks_compiled_packages(project):
    _, prefix, _ = project
    result = pmpm("list", prefix)
    assert result.code == 0, result.text
    assert result.out.startswith(f"# packages in environment at {prefix}:")
    rows = {line.split()[0]: line for line in result.out.splitlines() if not line.startswith("#")}
    assert {name: f"{r.split()[1]}-{r.split()[2]}" for name, r in rows.items()} == installed(prefix)
    for package in record_of(prefix)["compiled_packages"]:
        line = rows[package["name"]]
        assert f"target={package['target']}" in line and f"key={package['build_key']}" in line
        assert f"source={package['source']['identity']}" in line
    assert "key=" not in rows["libdemo"]

    document = json.loads(pmpm("list", prefix, "--json").out)
    assert document["format"] == 1 and document["stacks"] == [str(prefix)]
    by_name = {p["name"]: p for p in document["packages"]}
    assert {n: f"{p['version']}-{p['build']}" for n, p in by_name.items()} == installed(prefix)
    keys = {p["name"]: p["build_key"] for p in record_of(prefix)["compiled_packages"]}
    assert {n: p["compiled"]["build_key"] for n, p in by_name.items() if p["compiled"]} == keys
    assert by_name["libdemo"]["compiled"] is None


def test_list_refuses_a_folder_that_is_no_environment(tmp_path):
    result = pmpm("list", tmp_path)
    assert result.code == 1 and "is not an environment" in result.err
    assert "Traceback" not in result.text


def test_remove_refuses_what_is_not_an_environment(tmp_path):
    folder = tmp_path / "data"
    (folder / "lib").mkdir(parents=True)
    (folder / "lib" / "precious.txt").write_text("keep me\n")
    before = tree_digest(folder)
    result = pmpm("remove", folder, "--yes")
    assert result.code == 1 and "not a conda or pmpm environment" in result.err, result.text
    assert "Traceback" not in result.text
    assert tree_digest(folder) == before
    missing = pmpm("remove", tmp_path / "nowhere", "--yes")
    assert missing.code == 1 and "does not exist" in missing.err


def test_remove_asks_first_and_without_a_terminal_removes_nothing(tmp_path, demo_channel):
    env = _home(tmp_path)
    prefix = tmp_path / "p"
    spec = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-data"])
    assert pmpm("conda_install", prefix, "--file", spec, env=env).code == 0
    before = tree_digest(prefix)
    proc = _pmpm_without_terminal("remove", prefix, env=env)
    assert proc.returncode == 1 and "--yes" in proc.stderr, proc.stdout + proc.stderr
    assert f"would remove:\n  {prefix}" in proc.stdout
    assert tree_digest(prefix) == before
    assert str(prefix) in _environments_txt(env)


def test_remove_yes_takes_the_environment_its_modules_kernel_and_registration(project, tmp_path):
    source, _, _ = project
    env = _home(tmp_path)
    modules = tmp_path / "modules"
    env["MODULEPATH"] = str(modules)
    prefix = tmp_path / "p"
    other = "/some/conda/env/of/the/user"
    Path(env["HOME"], ".conda").mkdir()
    Path(env["HOME"], ".conda", "environments.txt").write_text(f"{other}\n")
    spec = source.root / "kernel.yml"  # beside the recipes folder it names
    spec.write_text(source.env.read_text() + "  jupyter_kernel: true\n")
    assert pmpm("conda_install", prefix, "--file", spec, env=env).code == 0
    assert _environments_txt(env) == [other, str(prefix)]
    assert pmpm("conda_install", prefix, "--file", spec, env=env).code == 0  # no-op: once only
    assert _environments_txt(env) == [other, str(prefix)]
    written = pmpm("module", prefix, "--lmod", modules, env=env)
    assert written.code == 0, written.text
    (modulefile,) = modules.glob("*/*.lua")
    (kernel,) = Path(env["JUPYTER_DATA_DIR"], "kernels").iterdir()
    assert json.loads((kernel / "kernel.json").read_text())["metadata"]["pmpm"]["prefix"] == str(prefix)

    result = pmpm("remove", prefix, "--yes", env=env)
    assert result.code == 0, result.text
    assert str(modulefile) in result.out and str(kernel) in result.out
    assert not prefix.exists() and not modulefile.exists() and not kernel.exists()
    assert _environments_txt(env) == [other]


#: ``conda env list --json`` as a user runs it. Run as root, conda reads the environments.txt of
#: every account's home (the password database's, not $HOME) and the test's HOME would not be
#: among them; its user branch is what a user gets, so the admin check is switched off.
CONDA_ENV_LIST = (
    "import sys, conda.core.envs_manager as m\n"
    "m.is_admin = lambda: False\n"
    "sys.argv = ['conda', 'env', 'list', '--json']\n"
    "from conda.cli.main import main\n"
    "sys.exit(main())\n"
)


def _conda_envs(real_conda) -> list[str]:
    proc = subprocess.run(
        [real_conda.python, "-c", CONDA_ENV_LIST],
        env=real_conda.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)["envs"]


def test_conda_env_list_sees_pmpm_prefixes_until_removed(tmp_path, demo_channel, real_conda):
    env = {**real_conda.env, "JUPYTER_DATA_DIR": str(tmp_path / "jupyter"), "CONDA_REGISTER_ENVS": "true"}
    prefix = tmp_path / "p"
    spec = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-data"])
    assert str(prefix) not in _conda_envs(real_conda)
    result = pmpm("conda_install", prefix, "--file", spec, env=env)
    assert result.code == 0, result.text
    assert str(prefix) in _conda_envs(real_conda)
    assert "demo-data" in real_conda.run("list", "-p", prefix).stdout
    result = pmpm("remove", prefix, "--yes", env=env)
    assert result.code == 0, result.text
    assert str(prefix) not in _conda_envs(real_conda)
    assert str(prefix) not in (Path(env["HOME"]) / ".conda" / "environments.txt").read_text()


def test_clean_shows_what_it_would_free_then_frees_it(tmp_path, demo_channel):
    cache = tmp_path / "cache"  # a cache of the test's own: clean empties it
    project = make_project(tmp_path / "project", demo_channel.path)
    env = {**_home(tmp_path), "PMPM_CACHE_DIR": str(cache)}
    prefix = tmp_path / "p"
    assert pmpm("conda_install", prefix, "--file", project.env, env=env).code == 0
    parts = {"package cache": cache / "pkgs", "sources": cache / "sources", "logs": cache / "logs"}
    assert all(folder.is_dir() for folder in parts.values())
    channel = tree_digest(cache / "channel")
    assert channel

    shown = pmpm("clean", env=env)
    assert shown.code == 0, shown.text
    for what, folder in parts.items():
        assert any(
            line.strip().startswith(what) and line.endswith(str(folder)) for line in shown.out.splitlines()
        )
    assert "would free" in shown.out and "--yes" in shown.out
    assert all(folder.is_dir() for folder in parts.values())  # nothing removed yet

    freed = pmpm("clean", "--yes", env=env)
    assert freed.code == 0 and "freed" in freed.out, freed.text
    assert not any(folder.exists() for folder in parts.values())
    assert tree_digest(cache / "channel") == channel  # compiled packages are `cache prune`'s
    assert pmpm("verify", prefix, env=env).code == 0  # the environment kept its files
    again = tmp_path / "again"
    assert pmpm("conda_install", again, "--file", project.env, env=env).code == 0
    assert installed(again) == installed(prefix)
    assert pmpm("clean", env=env).code == 0


def _answer(prefix: Path, reply: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``pmpm remove PREFIX`` at a terminal (a pseudo-terminal as stdin), answering ``reply``."""
    import pty

    leader, follower = pty.openpty()
    try:
        os.write(leader, reply.encode() + b"\n")
        return subprocess.run(
            [sys.executable, "-m", "pmpm", "remove", str(prefix)],
            env={**os.environ, **env},
            stdin=follower,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)


def test_remove_at_a_terminal_removes_only_when_the_answer_is_yes(tmp_path, demo_channel):
    env = _home(tmp_path)
    prefix = tmp_path / "p"
    spec = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-data"])
    assert pmpm("conda_install", prefix, "--file", spec, env=env).code == 0
    before = tree_digest(prefix)
    declined = _answer(prefix, "n", env)
    assert declined.returncode == 1 and "nothing was removed" in declined.stdout, (
        declined.stdout + declined.stderr
    )
    assert f"remove {prefix}? [y/N]" in declined.stdout
    assert tree_digest(prefix) == before
    accepted = _answer(prefix, "y", env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert not prefix.exists() and str(prefix) not in _environments_txt(env)
