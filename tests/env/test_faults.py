"""Concurrency and faults: a second run waits, a killed run is repaired, no crash at exit."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pmpm.build.package import PackageMeta
from pmpm.env.prefix_lock import prefix_lock
from tests.clihelp import installed, pmpm, tree_digest, write_env
from tests.factories import LocalChannel

N_PACKAGES = 60


@pytest.fixture(scope="module")
def wide_channel(tmp_path_factory):
    """Enough packages and files (two versions each) that an install takes a while to kill."""
    channel = LocalChannel(tmp_path_factory.mktemp("wide"))
    for version in ("1.0", "2.0"):
        for i in range(N_PACKAGES):
            files = {f"share/pkg{i}/f{j}.dat": os.urandom(16_384) for j in range(40)}
            files[f"share/pkg{i}/VERSION"] = version
            channel.add(PackageMeta(f"pkg{i}", version, "0", noarch="generic"), files)
    channel.index()
    return channel


def _consistent(prefix: Path) -> None:
    """Every file of every installed package is present with its recorded content; no stray files."""
    owned = {"conda-meta", "CACHEDIR.TAG"}
    for record_path in (prefix / "conda-meta").glob("*.json"):
        record = json.loads(record_path.read_text())
        for entry in record["paths_data"]["paths"]:
            path = prefix / entry["_path"]
            assert path.is_file(), f"{record['name']}: {entry['_path']} missing"
            expected = entry.get("sha256_in_prefix") or entry.get("sha256")
            assert hashlib.sha256(path.read_bytes()).hexdigest() == expected, entry["_path"]
            owned.add(entry["_path"])
    for dirpath, _dirs, files in os.walk(prefix):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), prefix)
            assert rel in owned or rel.startswith("conda-meta"), f"stray file {rel}"


def _kill_during_install(argv: list[str], prefix: Path, after_records: int) -> bool:
    """Start pmpm, SIGKILL it once ``after_records`` new records appeared; True if it was killed."""
    start = set((prefix / "conda-meta").glob("*.json")) if (prefix / "conda-meta").is_dir() else set()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        now = set((prefix / "conda-meta").glob("*.json")) if (prefix / "conda-meta").is_dir() else set()
        if len(now - start) >= after_records:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    proc.wait()
    return False


@pytest.mark.slow
@pytest.mark.parametrize("after_records", [1, N_PACKAGES // 2])
def test_killed_run_is_repaired_by_the_next(tmp_path, wide_channel, after_records):
    prefix = tmp_path / "p"
    names = [f"pkg{i}" for i in range(N_PACKAGES)]
    env = write_env(tmp_path / "env.yml", [wide_channel.path], [f"{n} 1.*" for n in names])
    argv = [sys.executable, "-m", "pmpm", "conda_install", str(prefix), "--file", str(env)]

    # killed while creating
    killed = _kill_during_install(argv, prefix, after_records)
    assert killed, "the install finished before it could be killed: make the channel heavier"
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    assert "repairing" in result.out
    _consistent(prefix)
    assert set(installed(prefix).values()) == {"1.0-0"}

    # killed while upgrading every package: the next run repairs, then upgrades
    write_env(env, [wide_channel.path], [f"{n} 2.*" for n in names])
    killed = _kill_during_install(argv, prefix, after_records)
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 0, result.text
    if killed:
        assert "repairing" in result.out
    _consistent(prefix)
    assert set(installed(prefix).values()) == {"2.0-0"}
    assert pmpm("conda_install", prefix, "--file", env).out.strip().endswith(f"up to date with {env}")


def test_second_run_waits_for_the_lock_and_says_so(tmp_path, wide_channel):
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [wide_channel.path], ["pkg0"])
    released = threading.Event()
    with prefix_lock(prefix):
        proc = subprocess.Popen(
            [sys.executable, "-m", "pmpm", "conda_install", str(prefix), "--file", str(env)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first_line = proc.stdout.readline()
        assert "another pmpm is working on" in first_line and "waiting" in first_line
        time.sleep(0.3)
        assert proc.poll() is None, "the second run must wait while the lock is held"
        assert not list((prefix / "conda-meta").glob("*.json"))
        released.set()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert installed(prefix) == {"pkg0": "2.0-0"}


def test_interrupted_journal_is_rolled_back_exactly(tmp_path, wide_channel):
    """A journal left by a dead run puts back a prefix whose files a run had started changing."""
    from pmpm.env import journal

    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [wide_channel.path], ["pkg1 1.*", "pkg2"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    before = tree_digest(prefix)

    journal.begin(prefix)
    # as an interrupted link step leaves them: files replaced (never edited in place: they are
    # hard links into the package cache), removed, added, and a record gone
    (prefix / "share" / "pkg1" / "f0.dat").unlink()
    (prefix / "share" / "pkg1" / "f0.dat").write_bytes(b"half written")
    (prefix / "share" / "pkg2" / "f1.dat").unlink()
    (prefix / "share" / "stray").mkdir()
    (prefix / "share" / "stray" / "new.txt").write_text("from a dead run")
    next((prefix / "conda-meta").glob("pkg2-*.json")).unlink()

    journal.restore(prefix)
    after = tree_digest(prefix)
    assert after == before
    assert not journal.pending(prefix)


@pytest.mark.slow
def test_cli_runs_that_install_never_crash_at_exit(tmp_path, wide_channel):
    """py-rattler's tokio workers once crashed ~1 process in 10 at exit after an install."""
    prefix = tmp_path / "p"
    env_a = write_env(tmp_path / "a.yml", [wide_channel.path], ["pkg3 1.*", "pkg4"])
    env_b = write_env(tmp_path / "b.yml", [wide_channel.path], ["pkg3 2.*"])
    failures = []
    for i in range(30):
        env = env_a if i % 2 == 0 else env_b
        result = pmpm("conda_install", prefix, "--file", env)
        if result.code != 0 or "panicked" in result.err:
            failures.append((i, result.code, result.err[-500:]))
    for i in range(10):  # processes whose last py-rattler call is a solve
        result = pmpm("conda_install", prefix, "--file", env_a, "--dry-run")
        if result.code != 0 or "panicked" in result.err:
            failures.append((f"dry-run {i}", result.code, result.err[-500:]))
    assert not failures
    assert installed(prefix) == {"pkg3": "2.0-0"}


def test_a_journal_cut_short_is_dropped_by_the_next_run(tmp_path, wide_channel):
    """A journal folder without its snapshot (a kill or a full disk while writing it) stands for
    a change that never started: the next run removes it instead of keeping it for ever."""
    from pmpm.env import journal

    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [wide_channel.path], ["pkg1 1.*"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    before = tree_digest(prefix)
    journal.begin(prefix)
    jdir = journal.pmpm_dir(prefix) / "journal"
    (jdir / "snapshot.json").unlink()  # as a run killed before writing its snapshot leaves it
    assert (jdir / "conda-meta").is_dir()

    journal.restore(prefix)  # nothing had changed: nothing to put back
    assert tree_digest(prefix) == before
    journal.begin(prefix)
    (jdir / "snapshot.json").unlink()
    result = pmpm("conda_install", prefix, "--file", env)  # a no-op run: it cleans up all the same
    assert result.code == 0, result.text
    assert "up to date" in result.out and "repairing" not in result.out
    assert not jdir.exists()
    assert tree_digest(prefix) == before


def test_a_record_that_cannot_be_written_puts_the_prefix_back(tmp_path, wide_channel):
    """The record is part of the prefix: a failure writing it (here the path is taken by a
    folder; a full disk is tested in test_disk_full) undoes the run's package changes too."""
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [wide_channel.path], ["pkg1 1.*"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    record = prefix / "conda-meta" / "pmpm" / "record.json"
    record.unlink()
    (record / "in-the-way").mkdir(parents=True)
    before = tree_digest(prefix)

    write_env(env, [wide_channel.path], ["pkg1 2.*"])
    result = pmpm("conda_install", prefix, "--file", env)
    assert result.code == 1, result.text
    assert "Traceback" not in result.err and f"cannot use {record}: Is a directory" in result.err, result.err
    assert tree_digest(prefix) == before
    assert installed(prefix)["pkg1"].startswith("1.0")

    (record / "in-the-way").rmdir()
    record.rmdir()
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    assert installed(prefix)["pkg1"].startswith("2.0") and record.is_file()
