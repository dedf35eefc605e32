"""``pmpm remove`` and ``pmpm clean`` beside a run that is working: real second processes hold
the locks (an install caught in the middle of a build, py-rattler's lock on a package-cache
entry, the prefix lock), and what they use is left alone until they are done.

The install is held in its build by a script recipe that waits for a file the test creates, so
"during the install" is a state the test controls, not a race against time.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pmpm import paths
from tests.clihelp import installed, pmpm, tree_digest, write_env

#: a recipe whose build says it started, then waits (up to a minute) until it may go on
SLOW = """\
name: slowpoke
version: '1.0'
source: {{path: ../src}}
build:
  system: script
  script: |
    touch {started}
    for i in $(seq 600); do [ -e {go} ] && break; sleep 0.1; done
    [ -e {go} ]
    mkdir -p $STAGE_PREFIX/share
    cp $SRC_DIR/data.txt $STAGE_PREFIX/share/slowpoke.txt
"""

DEADLINE = 120  # seconds a step may take before the test gives up (never a timing assertion)


class Slow:
    """A project whose install stops in the build of ``slowpoke`` until :meth:`release`."""

    def __init__(self, root: Path, channel: Path) -> None:
        self.started, self.go = root / "started", root / "go"
        (root / "src").mkdir(parents=True)
        (root / "src" / "data.txt").write_text("slow but sure\n")
        (root / "recipes").mkdir()
        (root / "recipes" / "slowpoke.yaml").write_text(SLOW.format(started=self.started, go=self.go))
        extra = "_pmpm:\n  recipes: [recipes]\n  packages: [slowpoke]\n"
        self.env = write_env(root / "env.yml", [channel], ["demo-data"], extra)

    def start(self, prefix: Path, env: dict[str, str]) -> subprocess.Popen[str]:
        proc = _popen(env, "conda_install", prefix, "--file", self.env)
        _wait_for(lambda: self.started.exists() or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        return proc

    def release(self) -> None:
        self.go.touch()


def _popen(env: dict[str, str], *args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pmpm", *map(str, args)],
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def _line_with(proc: subprocess.Popen[str], text: str) -> str:
    """Wait until ``proc`` prints a line holding ``text`` (the process keeps running); the lines
    read are kept for :func:`_finish`."""
    assert proc.stdout is not None
    seen = _seen.setdefault(proc.pid, [])
    done = threading.Event()

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            seen.append(line)
            if text in line:
                done.set()
                return
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(DEADLINE) and seen and text in seen[-1], f"no line with {text!r} in {seen}"
    return seen[-1]


#: stdout lines already read from a process, by pid
_seen: dict[int, list[str]] = {}


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=DEADLINE)
    return proc.returncode, "".join(_seen.pop(proc.pid, [])) + out + err


HOLD = """\
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_SH if sys.argv[2] == "shared" else fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
"""


def _hold(path: Path, mode: str) -> subprocess.Popen[str]:
    """Another process holding a ``flock`` on ``path`` until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def _let_go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=DEADLINE)


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A cache, HOME and Jupyter folder of the test's own (clean empties the cache)."""
    (tmp_path / "home").mkdir()
    return {
        "PMPM_CACHE_DIR": str(tmp_path / "cache"),
        "HOME": str(tmp_path / "home"),
        "JUPYTER_DATA_DIR": str(tmp_path / "home" / "jupyter"),
        "CONDA_REGISTER_ENVS": "true",
    }


def _environments_txt(env: dict[str, str]) -> list[str]:
    path = Path(env["HOME"]) / ".conda" / "environments.txt"
    return path.read_text().splitlines() if path.exists() else []


def test_remove_waits_for_the_install_writing_the_prefix_and_names_it(tmp_path, demo_channel, env):
    slow = Slow(tmp_path / "project", demo_channel.path)
    prefix = tmp_path / "p"
    install = slow.start(prefix, env)
    remove = _popen(env, "remove", prefix, "--yes")
    line = _line_with(remove, "another pmpm is working on")
    assert f"pid {install.pid} " in line and "pmpm conda_install" in line, line
    time.sleep(0.3)
    assert remove.poll() is None, "remove must wait while the install holds the prefix"
    assert prefix.is_dir()

    slow.release()
    code, text = _finish(install)
    assert code == 0, text
    code, text = _finish(remove)
    assert code == 0 and f"removed {prefix}" in text, text
    assert not prefix.exists()
    assert str(prefix) not in _environments_txt(env)  # the install's registration came first


def test_a_run_waiting_on_a_removed_prefix_locks_the_new_one(tmp_path, demo_channel, env):
    """The holder deletes the prefix (as ``pmpm remove`` does) while an install waits: the
    install must then hold the lock file of the prefix it recreates, or a third run could
    enter beside it."""
    prefix = tmp_path / "p"
    small = write_env(tmp_path / "small.yml", [demo_channel.path], ["demo-data"])
    assert pmpm("conda_install", prefix, "--file", small, env=env).code == 0
    holder = _hold(paths.lock_file(prefix), "exclusive")
    slow = Slow(tmp_path / "project", demo_channel.path)
    install = _popen(env, "conda_install", prefix, "--file", slow.env)
    _line_with(install, "another pmpm is working on")
    for path in sorted(prefix.rglob("*"), reverse=True):  # the holder's remove, under its lock
        path.unlink() if not path.is_dir() or path.is_symlink() else path.rmdir()
    prefix.rmdir()
    _let_go(holder)

    _wait_for(lambda: slow.started.exists() or install.poll() is not None)
    assert install.poll() is None, _finish(install)
    fd = os.open(paths.lock_file(prefix), os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
        slow.release()
    code, text = _finish(install)
    assert code == 0, text
    assert "slowpoke" in installed(prefix) and "demo-data" in installed(prefix)


def test_clean_keeps_what_a_running_install_uses_and_says_who(tmp_path, demo_channel, env):
    slow = Slow(tmp_path / "project", demo_channel.path)
    prefix = tmp_path / "p"
    cache = Path(env["PMPM_CACHE_DIR"])
    install = slow.start(prefix, env)
    before = {part: set(tree_digest(cache / part)) for part in ("pkgs", "sources", "build", "logs")}
    assert before["pkgs"] and before["logs"]

    result = pmpm("clean", "--yes", "--json", env=env)
    assert result.code == 0, result.text
    document = json.loads(result.out)
    assert document["command"] == "clean" and document["removed"] is False
    documented = {"format", "command", "cache", "removed", "in_use_by", "parts", "would_free", "freed"}
    assert set(document) == documented  # docs/json.md's table
    assert all(set(p) == {"kind", "path", "size", "freed", "kept"} for p in document["parts"])
    assert document["freed"] == 0 and document["would_free"] > 0
    (user,) = document["in_use_by"]
    assert f"pid {install.pid} " in user and "pmpm conda_install" in user, user
    assert {part: set(tree_digest(cache / part)) for part in before} == before  # every file kept
    text = pmpm("clean", "--yes", env=env)
    assert "nothing was removed: the cache is in use by" in text.out and f"pid {install.pid}" in text.out

    slow.release()
    code, text = _finish(install)
    assert code == 0, text
    assert (prefix / "share" / "slowpoke.txt").read_text() == "slow but sure\n"
    freed = json.loads(pmpm("clean", "--yes", "--json", env=env).out)
    assert freed["removed"] is True and freed["in_use_by"] == []
    assert freed["freed"] == freed["would_free"] > 0
    assert not any((cache / part).exists() for part in before)


def test_clean_keeps_a_package_cache_entry_another_process_has_locked(tmp_path, demo_channel, env):
    prefix = tmp_path / "p"
    spec = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-data", "libdemo"])
    assert pmpm("conda_install", prefix, "--file", spec, env=env).code == 0
    pkgs = Path(env["PMPM_CACHE_DIR"]) / "pkgs"
    entries = sorted(p.name for p in pkgs.iterdir() if p.is_dir())
    busy = next(name for name in entries if name.startswith("libdemo-"))
    kept = tree_digest(pkgs / busy)
    reader = _hold(pkgs / f"{busy}.lock", "shared")  # as py-rattler holds an entry it links
    try:
        document = json.loads(pmpm("clean", "--yes", "--json", env=env).out)
    finally:
        _let_go(reader)
    (part,) = [p for p in document["parts"] if p["kind"] == "package cache"]
    assert part["kept"] == [busy] and 0 < part["freed"] < part["size"]
    assert sorted(p.name for p in pkgs.iterdir() if p.is_dir()) == [busy]
    assert tree_digest(pkgs / busy) == kept
    again = json.loads(pmpm("clean", "--yes", "--json", env=env).out)
    assert [p["kept"] for p in again["parts"] if p["kind"] == "package cache"] == [[]]
    assert not pkgs.exists()


def test_an_install_waits_while_clean_holds_the_cache(tmp_path, demo_channel, env):
    prefix = tmp_path / "p"
    spec = write_env(tmp_path / "env.yml", [demo_channel.path], ["demo-data"])
    cache = Path(env["PMPM_CACHE_DIR"])
    cache.mkdir()
    cleaner = _hold(cache / "lock", "exclusive")  # where `pmpm clean --yes` holds it alone
    install = _popen(env, "conda_install", prefix, "--file", spec)
    _line_with(install, "pmpm clean is removing cache entries")
    time.sleep(0.3)
    assert install.poll() is None and not list((prefix / "conda-meta").glob("*.json"))
    _let_go(cleaner)
    code, text = _finish(install)
    assert code == 0, text
    assert "demo-data" in installed(prefix)
