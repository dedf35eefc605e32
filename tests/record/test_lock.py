"""``pmpm export`` and ``pmpm conda_install --lock``: rebuild an environment elsewhere, same id."""

from __future__ import annotations

import subprocess

import pytest

from tests.clihelp import installed, pmpm
from tests.recordhelp import env_id, make_project, record_of


@pytest.fixture
def exported(tmp_path, demo_channel):
    project = make_project(tmp_path, demo_channel.path)
    prefix = tmp_path / "p"
    project.install(prefix)
    lock = tmp_path / "env.lock"
    result = pmpm("export", prefix, "-o", lock)
    assert result.code == 0, result.text
    return project, prefix, lock


def test_the_lock_is_a_rattler_lock_with_a_pmpm_section(exported):
    import yaml
    from rattler import LockFile

    _, prefix, lock = exported
    parsed = LockFile.from_path(lock)  # py-rattler reads it as it is
    env = parsed.default_environment()
    records = env.conda_repodata_records_for_platform(parsed.platforms()[0])
    assert sorted(r.name.normalized for r in records) == ["demo-data", "libdemo", "python"]
    section = yaml.safe_load(lock.read_text())["pmpm"]
    assert section["environment_id"] == env_id(prefix)
    hello = {c["name"]: c for c in section["compiled"]}["hello"]
    assert hello["source"]["identity"].startswith("tree:") and "echo" in hello["recipe"]["text"]
    assert "${prefix}" in hello["flags"]["ldflags"]


def test_rebuild_from_the_lock_gives_the_same_environment(exported, tmp_path):
    _, prefix, lock = exported
    new = tmp_path / "elsewhere" / "rebuilt"
    result = pmpm("conda_install", new, "--lock", lock)
    assert result.code == 0, result.text
    assert "no solve" in result.out and "(the same as the lock's)" in result.out
    assert env_id(new) == env_id(prefix)
    assert {k: v.split("-pmpm_")[0] for k, v in installed(new).items()} == {
        k: v.split("-pmpm_")[0] for k, v in installed(prefix).items()
    }
    out = subprocess.run([new / "bin" / "hello"], capture_output=True, text=True, check=True).stdout
    assert out == "hello, world\n"
    assert pmpm("verify", new).code == 0
    assert pmpm("diff", prefix, new).code == 0
    flags = {p["name"]: p["flags"] for p in record_of(new)["compiled_packages"]}
    assert (
        flags["greet"]["cflags"]
        == {p["name"]: p["flags"] for p in record_of(prefix)["compiled_packages"]}["greet"]["cflags"]
    )


def test_a_rebuild_from_the_lock_here_has_the_same_build_keys_and_reuses_the_builds(exported, tmp_path):
    """The lock names a recipe's local tree by an absolute path, the env file by a relative one:
    where a source lives is not part of the build key (its tree hash is), so the same builds are
    installed from the binary cache instead of compiled again."""
    _, prefix, lock = exported
    new = tmp_path / "again"
    result = pmpm("conda_install", new, "--lock", lock)
    assert result.code == 0, result.text
    assert installed(new) == installed(prefix)  # build strings carry the build keys
    assert "installed hello 2.0 from the binary cache" in result.out, result.out
    assert "building" not in result.out


def test_a_changed_source_is_refused(exported, tmp_path):
    project, _, lock = exported
    project.greet_c.write_text(project.greet_c.read_text().replace("world", "moon"))
    new = tmp_path / "new"
    result = pmpm("conda_install", new, "--lock", lock)
    assert result.code == 1
    assert "the source of greet is not the locked one" in result.err and "Traceback" not in result.text
    assert not new.exists()


def test_another_target_is_reported_and_target_overrides(exported, tmp_path):
    _, prefix, lock = exported
    host = record_of(prefix)["host"]["target"]
    other = "haswell" if host != "haswell" else "skylake"
    moved = tmp_path / "other-cpu.lock"
    moved.write_text(lock.read_text().replace(f"target: {host}\n", f"target: {other}\n"))
    refused = pmpm("conda_install", tmp_path / "n1", "--lock", moved)
    assert refused.code == 1
    assert f"built for target {other}, this host is {host}" in refused.err
    assert f"--target {other}" in refused.err and "Traceback" not in refused.text

    accepted = pmpm("conda_install", tmp_path / "n2", "--lock", moved, "--target", host)
    assert accepted.code == 0, accepted.text
    assert f"note: building for target {host} (--target)" in accepted.out
    assert env_id(tmp_path / "n2") == env_id(prefix)


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # truncated
        lambda text: text.replace("sha256: ", "sha256: 0", 1),  # the conda part edited
        lambda text: "\x00\x01 not yaml: [",
        lambda text: text.split("\n# --- pmpm")[0],  # a bare conda lock
    ],
    ids=["truncated", "edited", "garbage", "no-pmpm-section"],
)
def test_a_damaged_lock_is_a_clear_error(exported, tmp_path, damage):
    _, _, lock = exported
    bad = tmp_path / "bad.lock"
    bad.write_text(damage(lock.read_text()))
    result = pmpm("conda_install", tmp_path / "new", "--lock", bad)
    assert result.code == 1, result.text
    assert result.err.startswith("error:") and "Traceback" not in result.text
    assert not (tmp_path / "new").exists()


def test_lock_and_file_options(tmp_path, exported):
    project, _, lock = exported
    both = pmpm("conda_install", tmp_path / "n", "--lock", lock, "--file", project.env)
    assert both.code == 1 and "not both" in both.err
    neither = pmpm("conda_install", tmp_path / "n")
    assert neither.code == 1 and "--lock" in neither.err
    dry = pmpm("conda_install", tmp_path / "n", "--lock", lock, "--dry-run")
    assert dry.code == 0 and "+ libdemo 2.0-0" in dry.out and not (tmp_path / "n").exists()
    missing = pmpm("export", tmp_path / "nowhere", "-o", tmp_path / "x.lock")
    assert missing.code == 1 and "error:" in missing.err and "Traceback" not in missing.text


def test_the_rebuild_takes_the_env_file_from_the_lock_without_writing_it(exported, tmp_path):
    _, prefix, lock = exported
    new = tmp_path / "rebuilt"
    result = pmpm("conda_install", new, "--lock", lock)
    assert result.code == 0, result.text
    from pmpm import paths

    assert not (paths.from_lock_dir(new) / "environment.yml").exists()
    original, rebuilt = record_of(prefix), record_of(new)
    assert rebuilt["env_file"]["text"] == original["env_file"]["text"]
    assert rebuilt["env_file"]["sha256"] == original["env_file"]["sha256"]
    assert rebuilt["env_file"]["path"] == str(lock.absolute())  # where the text was read
    # the record's build inputs are the stored ones: the locked sources, the same flags
    inputs = {p["name"]: p["inputs"] for p in rebuilt["compiled_packages"]}
    for package in original["compiled_packages"]:
        was, now = package["inputs"], inputs[package["name"]]
        assert (now["format"], now["source"], now["flags"]) == (was["format"], was["source"], was["flags"])
