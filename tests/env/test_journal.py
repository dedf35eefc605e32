"""The journal (pmpm.env.journal), called in-process on real prefixes: what :func:`begin` writes,
the rollback of a failed or killed run, the commit, and journals that are cut short or damaged.

The prefixes hold genuine conda packages (a local channel built by tests.factories, installed by
py-rattler), because a rollback relinks the packages whose files a run touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pmpm import paths
from pmpm.build.package import PackageMeta
from pmpm.env import journal
from pmpm.env.prefix_lock import prefix_lock
from pmpm.errors import PmpmError
from tests.clihelp import REPO, tree_digest
from tests.factories import LocalChannel, rattler_install

# names of their own: py-rattler's package cache (one per session) is keyed by file name, and
# other tests pack other packages called `tool`
TOOL_DATA = "share/journal-tool/data.txt"
TOOL_BIN = "bin/journal-tool"


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> LocalChannel:
    """Two noarch packages: ``journal-tool`` (a script and a data file) and ``journal-other``."""
    chan = LocalChannel(tmp_path_factory.mktemp("journal") / "chan")
    chan.add(
        PackageMeta("journal-tool", "1.0", "0", noarch="generic"),
        {TOOL_BIN: "#!/bin/sh\necho tool\n", TOOL_DATA: "original\n"},
    )
    chan.add(
        PackageMeta("journal-other", "1.0", "0", noarch="generic"), {"share/journal-other/readme": "other\n"}
    )
    chan.index()
    return chan


@pytest.fixture
def prefix(tmp_path: Path, channel: LocalChannel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An environment holding both packages, and a file of the user's own."""
    where = tmp_path / "p"
    cache = tmp_path_factory.getbasetemp() / "journal-rattler-cache"  # the channel never changes
    rattler_install(where, ["journal-tool", "journal-other"], [channel.url], cache_dir=cache)
    (where / "CACHEDIR.TAG").unlink(missing_ok=True)  # py-rattler's; pmpm leaves prefixes as conda does
    (where / "notes.txt").write_text("the user's own file\n")
    return where


@contextmanager
def locked(prefix: Path) -> Iterator[None]:
    """The prefix lock, which every run holds while it writes or replays a journal."""
    with prefix_lock(prefix, on_wait=print):
        yield


def _digest(prefix: Path) -> dict[str, str]:
    """The prefix without pmpm's lock (and its folder), which a run creates and leaves."""
    return {
        k: v for k, v in tree_digest(prefix).items() if k not in ("conda-meta/pmpm", "conda-meta/pmpm/lock")
    }


def _records(prefix: Path) -> list[str]:
    return sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))


def test_begin_writes_a_snapshot_of_every_path_and_a_copy_of_the_records(prefix):
    with locked(prefix):
        snapshot = journal.begin(prefix)
        assert journal.pending(prefix)
        jdir = paths.journal_dir(prefix)
        written = json.loads((jdir / "snapshot.json").read_text())
        assert written == {"format": journal.FORMAT, "existed": True, "entries": snapshot.entries}
        st = os.lstat(prefix / TOOL_DATA)
        assert written["entries"][TOOL_DATA] == [1, st.st_size, st.st_mtime_ns, st.st_ino]
        assert written["entries"]["share/journal-tool"][0] == 0  # a folder
        assert "notes.txt" in written["entries"]
        # the run's own files are never part of what it puts back
        assert not any(
            k.startswith(("conda-meta/pmpm/lock", "conda-meta/pmpm/journal")) for k in written["entries"]
        )
        copies = {p.name: p.read_bytes() for p in (jdir / "conda-meta").glob("*.json")}
        assert copies == {p.name: p.read_bytes() for p in (prefix / "conda-meta").glob("*.json")}
        assert len(copies) == 2
        assert not any((jdir / "conda-meta" / "pmpm").iterdir())  # neither the lock nor the journal
        journal.commit(prefix)


def test_commit_drops_the_journal_and_keeps_the_change(prefix):
    with locked(prefix):
        journal.begin(prefix)
        (prefix / "share" / "new.txt").write_text("new\n")
        journal.commit(prefix)
    assert not journal.pending(prefix)
    assert not paths.journal_dir(prefix).exists()
    assert (prefix / "share" / "new.txt").read_text() == "new\n"


def test_restore_puts_back_what_a_failed_run_added_removed_and_changed(prefix):
    before = _digest(prefix)
    tool_record = next(p for p in (prefix / "conda-meta").glob("journal-tool-*.json"))
    with locked(prefix):
        journal.begin(prefix)
        # a run that half replaced `tool` and half removed `other`, then failed
        (prefix / TOOL_DATA).unlink()
        (prefix / TOOL_DATA).write_text("half written\n")
        tool_record.write_text("{}")
        (prefix / "share" / "journal-other" / "readme").unlink()
        next((prefix / "conda-meta").glob("journal-other-*.json")).unlink()
        (prefix / "lib" / "new").mkdir(parents=True)
        (prefix / "lib" / "new" / "libnew.so").write_bytes(b"\x7fELF")
        (prefix / "conda-meta" / "new-1.0-0.json").write_text("{}")
        journal.restore(prefix)
    assert not journal.pending(prefix)
    assert (prefix / TOOL_DATA).read_text() == "original\n"
    assert _digest(prefix) == before


def test_a_journal_from_a_killed_run_is_replayed_by_the_next(prefix):
    before = _digest(prefix)
    script = textwrap.dedent(
        f"""\
        import os, signal
        from pathlib import Path
        from pmpm.env import journal
        from pmpm.env.prefix_lock import prefix_lock
        prefix = Path({str(prefix)!r})
        with prefix_lock(prefix):
            journal.begin(prefix)
            (prefix / {TOOL_BIN!r}).unlink()
            (prefix / "share" / "half").mkdir()
            (prefix / "share" / "half" / "part.bin").write_bytes(b"\\0" * 100)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert journal.pending(prefix) and not (prefix / TOOL_BIN).exists()
    with locked(prefix):  # the kernel released the killed run's lock
        journal.restore(prefix)
    assert not journal.pending(prefix)
    assert _digest(prefix) == before
    assert os.access(prefix / TOOL_BIN, os.X_OK)


def test_a_journal_cut_short_stands_for_a_change_that_never_started(prefix):
    before = _digest(prefix)
    jdir = paths.journal_dir(prefix)
    with locked(prefix):
        journal.begin(prefix)
        (jdir / "snapshot.json").unlink()  # killed (or out of space) before the snapshot was written
        assert journal.pending(prefix)
        journal.restore(prefix)  # nothing to put back: nothing had changed yet
    assert not jdir.exists()
    assert _digest(prefix) == before


def test_taking_the_lock_drops_a_journal_cut_short(prefix):
    with locked(prefix):
        journal.begin(prefix)
        (paths.journal_dir(prefix) / "snapshot.json").unlink()
    assert journal.pending(prefix)
    with locked(prefix):
        assert not journal.pending(prefix)


def test_an_unreadable_journal_is_an_error_that_leaves_prefix_and_journal_alone(prefix):
    with locked(prefix):
        journal.begin(prefix)
        (prefix / "share" / "half.txt").write_text("half\n")
        jdir = paths.journal_dir(prefix)
        (jdir / "snapshot.json").write_text('{"format": 1, "exis')
        during = _digest(prefix)
        with pytest.raises(PmpmError) as failed:
            journal.restore(prefix)
    assert failed.value.where == str(jdir)
    assert "unreadable" in failed.value.message
    assert "remove the journal folder" in (failed.value.hint or "")
    assert journal.pending(prefix)
    assert _digest(prefix) == during


def test_a_prefix_the_run_created_is_emptied(tmp_path):
    prefix = tmp_path / "new"
    with locked(prefix):
        snapshot = journal.begin(prefix)
        assert snapshot.existed  # the lock made the folder: the snapshot sees an empty one
        assert snapshot.entries.keys() == {"conda-meta", "conda-meta/pmpm"}
    shutil.rmtree(prefix)
    snapshot = journal.begin(prefix)  # as the transaction sees a prefix that did not exist
    assert not snapshot.existed and snapshot.entries == {}
    (prefix / "bin").mkdir()
    (prefix / "bin" / "tool").write_text("#!/bin/sh\n")
    (prefix / "conda-meta" / "tool-1.0-0.json").write_text("{}")
    journal.restore(prefix)
    assert not journal.pending(prefix)
    assert list(prefix.iterdir()) == []


def test_restore_without_a_journal_changes_nothing(prefix):
    before = _digest(prefix)
    journal.restore(prefix)
    assert _digest(prefix) == before


def test_a_journal_begun_before_any_lock_still_puts_the_records_back(prefix):
    """begin() creates conda-meta/pmpm for the journal; restore() must not delete that folder
    (journal included) as the run's addition before it copies the saved records back."""
    shutil.rmtree(prefix / "conda-meta" / "pmpm", ignore_errors=True)
    records, before = _records(prefix), _digest(prefix)
    journal.begin(prefix)
    next((prefix / "conda-meta").glob("journal-other-*.json")).unlink()
    (prefix / "bin" / "added-by-the-run").write_text("#!/bin/sh\n")
    journal.restore(prefix)
    assert _records(prefix) == records
    assert _digest(prefix) == before
    assert not journal.pending(prefix)
