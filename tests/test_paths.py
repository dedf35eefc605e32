"""One decision per fact: pmpm's paths (pmpm.paths), the host target (pmpm.host.target) and the
prefix inventory (pmpm.env.inventory), each decided in one place and used by every module."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pmpm import paths
from pmpm.env import inventory, journal, layout, state
from pmpm.host.target import cpu_fingerprint, host_target_name
from pmpm.record import api as records
from pmpm.record import verify
from tests.factories import DemoChannel, rattler_install

ROOT = Path(__file__).resolve().parent.parent
PMPM = ROOT / "pmpm"


def test_pmpm_cache_dir_moves_every_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PMPM_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.delenv("PMPM_LOG_DIR", raising=False)
    places = [
        paths.package_cache(),
        paths.repodata_cache(),
        paths.build_channel(),
        paths.sources_dir(),
        paths.log_dir(),
        paths.build_dir(),
        paths.dev_dir(),
        paths.build_prefix_dir(),
        paths.python_shims_dir(),
        paths.host_target_cache(),
    ]
    assert all(p.parent == tmp_path / "c" for p in places)
    assert len(set(places)) == len(places)
    monkeypatch.setenv("PMPM_LOG_DIR", str(tmp_path / "logs"))
    assert paths.log_dir() == tmp_path / "logs"
    monkeypatch.delenv("PMPM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_root() == tmp_path / "xdg" / "pmpm"


def test_only_pmpm_paths_reads_the_cache_variables() -> None:
    """No other module decides where the cache is (it used to be read in several)."""
    readers = sorted(
        str(p.relative_to(ROOT))
        for p in PMPM.rglob("*.py")
        if re.search(r"environ(\.get\(|\[)\s*\"(PMPM_CACHE_DIR|XDG_CACHE_HOME|PMPM_LOG_DIR)\"", p.read_text())
    )
    assert readers == ["pmpm/paths.py"]


def test_a_prefix_keeps_pmpm_files_in_one_folder(tmp_path: Path) -> None:
    prefix = tmp_path / "env"
    own = prefix / "conda-meta" / "pmpm"
    assert paths.pmpm_dir(prefix) == journal.pmpm_dir(prefix) == layout.conda_layout(prefix).meta_dir == own
    assert (paths.lock_file(prefix), paths.journal_dir(prefix)) == (own / "lock", own / "journal")
    assert paths.conda_history(prefix) == prefix / "conda-meta" / "history"
    assert paths.build_inputs_file(prefix, "zlib") == own / "builds" / "zlib.json"
    state.expected(b"name: x\n", {}).save(prefix)
    assert paths.state_file(prefix).is_file()
    assert records.record_path(layout.conda_layout(prefix)) == own / "record.json"
    system = layout.system_layout(tmp_path / "root", tmp_path / "root" / "conda")
    assert system.meta_dir == paths.root_dir(tmp_path / "root") == tmp_path / "root" / ".pmpm"


def test_host_target_is_remembered_per_cpu_without_archspec(tmp_path: Path) -> None:
    """The first run asks archspec and remembers; the next one answers from the cache without
    importing archspec (the no-op path's speed); a cache for another CPU is asked again."""
    import archspec.cpu

    env = {**os.environ, "PMPM_CACHE_DIR": str(tmp_path)}
    ask = (
        "import sys; from pmpm.host.target import host_target_name; "
        "print(host_target_name()); print('archspec' in sys.modules)"
    )

    def run() -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", ask], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout.split()

    here = archspec.cpu.host().name
    assert run() == [here, "True"]
    memo = json.loads((tmp_path / "host-target.json").read_text())
    assert memo == {"cpu": cpu_fingerprint(), "target": here}
    assert run() == [here, "False"]
    (tmp_path / "host-target.json").write_text(json.dumps({"cpu": "another cpu", "target": "zen9"}))
    assert run() == [here, "True"]
    assert json.loads((tmp_path / "host-target.json").read_text())["cpu"] == cpu_fingerprint()


def test_record_lock_and_host_profile_name_the_same_target() -> None:
    from pmpm.host.detect import detect_host
    from pmpm.record.lock import _host_target

    name = host_target_name()
    assert name is not None
    assert records.describe_host().target == name
    assert _host_target() == name
    assert detect_host("host", {}).detected == name


def test_one_inventory_for_record_verify_and_state(tmp_path: Path, demo_channel: DemoChannel) -> None:
    prefix = tmp_path / "env"
    before = state.records_digest(prefix)
    rattler_install(prefix, ["demo-data"], [demo_channel.url], cache_dir=tmp_path / "cache")
    json_records = inventory.meta_records(prefix)
    rattler_records = inventory.prefix_records(prefix)
    assert [r["name"] for r in json_records] == [r.name.normalized for r in rattler_records] == ["demo-data"]
    assert inventory.record_names(prefix) == [p.name for p in inventory.record_files(prefix)]
    assert state.records_digest(prefix) != before
    # pmpm's own files, conda's bookkeeping and run-time bytecode are nobody's content
    (prefix / "conda-meta" / "pmpm").mkdir()
    (prefix / "conda-meta" / "pmpm" / "state.json").write_text("{}")
    (prefix / ".pmpm").mkdir()
    (prefix / ".pmpm" / "layout.json").write_text("{}")
    (prefix / "share" / "__pycache__").mkdir()
    (prefix / "share" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (prefix / "share" / "y.pyc").write_bytes(b"\0")
    files = inventory.walk_files(prefix)
    owned = [f.path for f in inventory.installed_files(json_records[0])]
    # py-rattler tags the prefix with a CACHEDIR.TAG (pmpm's conda stage removes it; this
    # stand-in install does not): a file no package owns, so listed
    assert owned and set(files) == {*owned, "CACHEDIR.TAG"}
    assert all(
        inventory.is_ignored(rel) for rel in ("conda-meta/history", ".pmpm/x", "a/__pycache__/b", "c.pyc")
    )
    assert not inventory.is_ignored("share/demo-data/data.txt")
    # the record and verify read the prefix through it: a fresh record verifies clean
    records.write_record(layout.conda_layout(prefix), None)
    assert verify.check(prefix).ok
    assert [p.name for p in records.read(prefix).conda_packages] == ["demo-data"]
