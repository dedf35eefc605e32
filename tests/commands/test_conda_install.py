"""``pmpm conda_install`` against real conda packages from conda's own test suite.

The channels come from ``../shared/realworld`` (real ``.conda`` files with repodata); the CLI runs
in a subprocess exactly as a user runs it.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.clihelp import FORMAT_REPO, TEST_RECIPES, installed, loaded_by, pmpm, tree_digest, write_env

pytestmark = pytest.mark.skipif(not TEST_RECIPES.is_dir(), reason="../shared/realworld channels are absent")


def test_create_installs_the_dependency_chain(tmp_path):
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["another_dependent"])
    result = pmpm("conda_install", tmp_path / "p", "--file", env)
    assert result.code == 0, result.text
    assert installed(tmp_path / "p") == {
        "another_dependent": "2.0-0",
        "dependent": "2.0-0",
        "dependency": "2.0-0",
    }
    record = json.loads(next((tmp_path / "p" / "conda-meta").glob("another_dependent-*.json")).read_text())
    assert "another_dependent" in record["requested_specs"]
    assert "+ another_dependent 2.0-0" in result.out


def test_rerun_is_a_noop_that_touches_nothing(tmp_path):
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependent"])
    assert pmpm("conda_install", tmp_path / "p", "--file", env).code == 0
    before = tree_digest(tmp_path / "p")
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "p" / "conda-meta").iterdir()}
    again = pmpm("conda_install", tmp_path / "p", "--file", env)
    assert again.code == 0
    assert "up to date" in again.out
    assert tree_digest(tmp_path / "p") == before
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "p" / "conda-meta").iterdir()} == mtimes


def test_update_downgrades_adds_and_removes(tmp_path):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["another_dependent", "versioned"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    assert installed(prefix)["another_dependent"] == "2.0-0"

    write_env(env, [TEST_RECIPES], ["another_dependent 1.*", "dependency <2"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    now = installed(prefix)
    assert now["another_dependent"] == "1.0-0"
    assert now["dependent"] == "1.0-0"
    assert now["dependency"] == "1.0-0"  # dependency <2 forces dependent back to 1.0
    assert "versioned" not in now  # removed by re-solving without it
    assert "another_dependent 2.0-0 -> 1.0-0" in result.out
    assert "- versioned" in result.out
    assert not list((prefix / "conda-meta").glob("versioned-*.json"))


def test_changed_spec_upgrades(tmp_path):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["versioned=1.0"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    write_env(env, [TEST_RECIPES], ["versioned >=2"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert installed(prefix) == {"versioned": "2.0-0"}
    assert "↑ versioned 1.0-0 -> 2.0-0" in result.out


def test_dry_run_prints_the_transaction_and_changes_nothing(tmp_path):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependent"])
    result = pmpm("conda_install", prefix, "--file", env, "--dry-run")
    assert result.code == 0, result.text
    assert "+ dependent 2.0-0" in result.out and "+ dependency 2.0-0" in result.out
    assert not prefix.exists()

    assert pmpm("conda_install", prefix, "--file", env).code == 0
    before = tree_digest(prefix)
    write_env(env, [TEST_RECIPES], ["dependent=1.0"])
    result = pmpm("conda_install", prefix, "--file", env, "--dry-run")
    assert result.code == 0, result.text
    assert "↓ dependent 2.0-0 -> 1.0-0" in result.out
    assert tree_digest(prefix) == before


def test_unsatisfiable_is_explained_and_changes_nothing(tmp_path):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependency", "unsatisfiable"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1
    assert "Traceback" not in result.text
    assert "cannot be solved" in result.err
    assert "versioned" in result.err  # what conflicts
    assert f"{env}:5" in result.err  # the line that asked for it
    assert not prefix.exists()


def test_run_constrained_is_honoured(tmp_path):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["run_constrained", "dependency"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    assert installed(prefix)["dependency"] == "2.0-0"

    write_env(env, [TEST_RECIPES], ["run_constrained", "dependency <2"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1
    assert "dependency" in result.err and "cannot be solved" in result.err
    assert installed(prefix)["dependency"] == "2.0-0"


def test_clobbering_packages_both_install(tmp_path):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["clobber-a", "clobber-b"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert set(installed(prefix)) == {"clobber-a", "clobber-b"}
    owned = set()
    for name in ("clobber-a", "clobber-b"):
        record = json.loads(next((prefix / "conda-meta").glob(f"{name}-*.json")).read_text())
        owned |= set(record["files"])
    assert owned and all((prefix / f).exists() or (prefix / f).is_symlink() for f in owned)


@pytest.mark.skipif(not FORMAT_REPO.is_dir(), reason="conda-format-repo is absent")
def test_broken_zlib_fails_clearly_with_nothing_half_installed(tmp_path):
    # conda-format-repo's zlib has symlinks stored with empty targets and needs a libgcc-ng
    # whose file the channel lacks: both must stop the run before PREFIX changes.
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependency"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    before = tree_digest(prefix)

    write_env(env, [FORMAT_REPO, TEST_RECIPES], ["dependency", "zlib"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1
    assert "Traceback" not in result.text
    assert "libgcc-ng" in result.err or "zlib" in result.err
    assert tree_digest(prefix) == before

    # zlib alone (its dependency satisfied by nothing else) through a copy of the channel whose
    # index lists only zlib: the broken archive itself must be refused
    chan = tmp_path / "zlib-only"
    shutil.copytree(
        FORMAT_REPO / "linux-64", chan / "linux-64", ignore=shutil.ignore_patterns("*.zst", "current*")
    )
    (chan / "noarch").mkdir()
    (chan / "noarch" / "repodata.json").write_text('{"info": {"subdir": "noarch"}, "packages": {}}')
    repodata = json.loads((chan / "linux-64" / "repodata.json").read_text())
    for key in ("packages", "packages.conda"):
        for record in repodata.get(key, {}).values():
            record["depends"] = []
    (chan / "linux-64" / "repodata.json").write_text(json.dumps(repodata))
    write_env(env, [chan, TEST_RECIPES], ["dependency", "zlib"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1, result.text
    assert "zlib-1.2.11" in result.err
    assert "Traceback" not in result.text
    assert tree_digest(prefix) == before

    fresh = tmp_path / "fresh"
    result = pmpm("conda_install", fresh, "--file", env)
    assert result.code == 1
    assert not fresh.exists()


def test_wrong_sha256_in_a_local_channel_is_refused(tmp_path):
    chan = tmp_path / "chan"
    shutil.copytree(TEST_RECIPES, chan)
    package = chan / "noarch" / "dependency-2.0-0.conda"
    package.write_bytes(package.read_bytes() + b"tampered")
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [chan], ["dependency"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1
    assert "sha256 mismatch for package dependency 2.0 0" in result.err
    assert "re-index" in result.err
    assert not prefix.exists()


def test_variables_are_stored_where_conda_keeps_them(tmp_path):
    prefix = tmp_path / "p"
    env = write_env(
        tmp_path / "env.yml", [TEST_RECIPES], ["dependency"], "variables:\n  MY_VAR: my value\n  N: 3\n"
    )
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    state = json.loads((prefix / "conda-meta" / "state").read_text())
    assert state["env_vars"] == {"MY_VAR": "my value", "N": "3"}

    write_env(env, [TEST_RECIPES], ["dependency"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    assert not (prefix / "conda-meta" / "state").exists()


def test_variables_reach_an_activated_shell(tmp_path):
    from rattler import Subdir
    from rattler.shell import ActivationVariables, Shell, activate

    prefix = tmp_path / "p"
    env = write_env(
        tmp_path / "env.yml", [TEST_RECIPES], ["dependency"], "variables:\n  MY_VAR: from-env-file\n"
    )
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    result = activate(prefix, ActivationVariables(None, []), Shell.bash, Subdir.current())
    assert "MY_VAR" in result.script and "from-env-file" in result.script


def test_foreign_folder_is_not_taken_over(tmp_path):
    prefix = tmp_path / "home"
    prefix.mkdir()
    (prefix / "thesis.tex").write_text("precious")
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependency"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1
    assert "not a conda environment" in result.err
    assert tree_digest(prefix) == {"thesis.tex": tree_digest(prefix)["thesis.tex"]}


def test_missing_env_file_is_a_clear_error(tmp_path):
    result = pmpm("conda_install", tmp_path / "p", "--file", tmp_path / "nope.yml")
    assert result.code == 1
    assert "nope.yml" in result.err and "Traceback" not in result.text
    assert not (tmp_path / "p").exists()


def test_noop_answer_does_not_load_the_cli_framework(tmp_path):
    """The no-op re-run is answered before typer, py-rattler or YAML are imported: that is its speed."""
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependency"])
    assert pmpm("conda_install", tmp_path / "p", "--file", env).code == 0
    out, heavy = loaded_by(
        ["conda_install", tmp_path / "p", "--file", env], ("typer", "rattler", "yaml", "rich")
    )
    assert "is up to date" in out
    assert heavy == []


def test_a_conda_only_create_loads_no_part_of_the_build_stage(tmp_path):
    """An env file without ``_pmpm`` packages solves and installs; it loads none of the compile
    stage (only the result type every run returns), no builder plugin and no jinja2: their
    import made a conda create measurably slower."""
    env = write_env(tmp_path / "env.yml", [TEST_RECIPES], ["dependent"])
    out, build = loaded_by(
        ["conda_install", tmp_path / "p", "--file", env], ("pmpm.build.", "pmpm.builders", "jinja2")
    )
    assert "is ready: " in out
    assert installed(tmp_path / "p")["dependent"]
    assert build == ["pmpm.build.result"]
