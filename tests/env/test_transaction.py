"""The one transaction every install path uses (pmpm.env.transaction): lock, repair, journal,
rollback, commit -- called directly, beside the CLI scenarios of test_faults and test_disk_full."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from pmpm.build.package import PackageMeta
from pmpm.env import journal
from pmpm.env.diskspace import DiskFull
from pmpm.env.transaction import transaction
from pmpm.errors import PmpmError
from tests.clihelp import pmpm, tree_digest, write_env
from tests.env.test_disk_full import fill, tmpfs  # noqa: F401  (the tmpfs fixture)
from tests.factories import LocalChannel


class Boom(Exception):
    """The failure a test provokes inside a transaction."""


def _env_prefix(root: Path) -> Path:
    """A prefix that is an (empty) conda environment, with one file of its own."""
    (root / "conda-meta").mkdir(parents=True)
    (root / "share").mkdir()
    (root / "share" / "kept.txt").write_text("kept\n")
    return root


def _digest(prefix: Path) -> dict[str, str]:
    """The prefix without pmpm's lock (which the transaction creates and leaves)."""
    return {
        k: v for k, v in tree_digest(prefix).items() if k not in ("conda-meta/pmpm", "conda-meta/pmpm/lock")
    }


def test_a_successful_change_is_committed(tmp_path):
    prefix = _env_prefix(tmp_path / "p")
    said: list[str] = []
    with transaction([prefix], said.append) as txn, txn.changing():
        assert journal.pending(prefix)  # the journal is written before the change
        (prefix / "share" / "new.txt").write_text("new\n")
    assert txn.committed and not journal.pending(prefix)
    assert (prefix / "share" / "new.txt").read_text() == "new\n"
    assert said == []


def test_any_failure_puts_every_stack_back(tmp_path):
    stacks = [_env_prefix(tmp_path / "compile"), _env_prefix(tmp_path / "conda")]
    before = [_digest(s) for s in stacks]
    with pytest.raises(Boom), transaction(stacks, print) as txn, txn.changing():
        for stack in stacks:
            (stack / "share" / "extra").mkdir()
            (stack / "share" / "extra" / "added.txt").write_text("added\n")
            (stack / "bin").mkdir()
        raise Boom
    assert not txn.committed
    assert [_digest(s) for s in stacks] == before
    assert not any(journal.pending(s) for s in stacks)


def test_a_changed_package_file_is_relinked_on_rollback(tmp_path):
    channel = LocalChannel(tmp_path / "chan")
    channel.add(PackageMeta("tool", "1.0", "0", noarch="generic"), {"share/tool/data.txt": "original\n"})
    channel.index()
    prefix = tmp_path / "p"
    env = write_env(tmp_path / "env.yml", [channel.path], ["tool"])
    assert pmpm("conda_install", prefix, "--file", env).code == 0
    owned = prefix / "share" / "tool" / "data.txt"
    before = _digest(prefix)
    with pytest.raises(Boom), transaction([prefix], print) as txn, txn.changing():
        owned.unlink()  # as an installer replacing it would
        owned.write_text("half written\n")
        raise Boom
    assert owned.read_text() == "original\n"
    assert _digest(prefix) == before


def test_a_prefix_this_run_created_is_removed_on_failure(tmp_path):
    prefix = tmp_path / "new"
    with pytest.raises(Boom), transaction([prefix], print) as txn, txn.changing():
        (prefix / "conda-meta").mkdir(exist_ok=True)
        (prefix / "conda-meta" / "x-1.0-0.json").write_text("{}")
        raise Boom
    assert not prefix.exists()


def test_an_empty_folder_is_left_empty_and_a_failure_before_any_change_removes_a_new_one(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    new = tmp_path / "root" / "stack"
    with pytest.raises(Boom), transaction([empty, new], print, roots=[tmp_path / "root"]):
        raise Boom  # e.g. a refused package, after the locks were taken
    assert empty.is_dir() and list(empty.iterdir()) == []
    assert not (tmp_path / "root").exists()


def test_a_folder_someone_else_filled_is_not_removed(tmp_path):
    """A run that waited on the lock may find another run's environment where it saw nothing."""
    prefix = tmp_path / "p"
    with pytest.raises(Boom), transaction([prefix], print):
        (prefix / "conda-meta" / "other-1.0-0.json").write_text("{}")
        raise Boom
    assert (prefix / "conda-meta" / "other-1.0-0.json").is_file()


def test_an_interrupted_run_is_repaired_when_the_next_takes_the_lock(tmp_path):
    prefix = _env_prefix(tmp_path / "p")
    before = _digest(prefix)
    journal.begin(prefix)  # a run that was killed half way through its change
    (prefix / "share" / "half.txt").write_text("half\n")
    said: list[str] = []
    with transaction([prefix], said.append):
        assert not journal.pending(prefix)
        assert _digest(prefix) == before
    assert said == [f"repairing {prefix}: a previous pmpm run was interrupted"]


def test_the_lock_is_held_for_the_whole_transaction(tmp_path):
    prefix = _env_prefix(tmp_path / "p")
    lock = prefix / "conda-meta" / "pmpm" / "lock"
    with transaction([prefix], print):
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    # released afterwards: another run gets it at once
    done = threading.Event()

    def other() -> None:
        with transaction([prefix], print):
            done.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(timeout=60)
    assert done.is_set()


def test_a_rollback_that_fails_is_said_and_the_original_error_raised(tmp_path):
    prefix = _env_prefix(tmp_path / "p")
    said: list[str] = []
    with pytest.raises(Boom), transaction([prefix], said.append) as txn, txn.changing():
        (prefix / "conda-meta" / "pmpm" / "journal" / "snapshot.json").write_text("not json")
        raise Boom
    assert len(said) == 1 and said[0].startswith(f"could not put {prefix} back as it was: ")
    assert "journal of an interrupted run is unreadable" in said[0]
    with pytest.raises(PmpmError, match="unreadable"):  # the journal stays for the user to decide
        journal.restore(prefix)


def test_a_full_disk_while_writing_the_journal_changes_nothing(tmp_path, tmpfs):  # noqa: F811
    mount = tmpfs("small", 256)
    prefix = _env_prefix(mount / "p")
    with transaction([prefix], print):
        pass  # the lock file exists before the disk fills up
    before = _digest(prefix)
    filler = fill(mount)
    entered = False
    with pytest.raises(DiskFull) as caught, transaction([prefix], print) as txn, txn.changing():
        entered = True
    assert not entered
    assert f"no space left on {mount} (writing the journal of {prefix})" in str(caught.value)
    assert _digest(prefix) == before and not journal.pending(prefix)
    filler.unlink()
    with transaction([prefix], print) as txn, txn.changing():
        (prefix / "share" / "after.txt").write_text("room again\n")
    assert txn.committed
