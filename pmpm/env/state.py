"""Know, without solving, that a prefix already is what the env file asks for.

After a successful run pmpm stores a fingerprint of every input that decided the result: the env
file's bytes, the options that change the outcome, ``CONDA_OVERRIDE_*``, the index files of local
channels (stat only), and the list of package records in the prefix. A re-run whose fingerprint
matches (and with no interrupted run pending) is a no-op: no YAML parse, no py-rattler import, no
solve. Remote channels are not re-read then, as with a lock file: ``--update`` re-solves against
their current contents.

This module must stay cheap to import: it is on the no-op path.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pmpm import __version__, paths
from pmpm.env import inventory
from pmpm.env.journal import pending
from pmpm.fsutil import atomic_write_text

FORMAT = 1


def _stat_key(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


def records_digest(*prefixes: Path) -> str:
    """Which package records the prefixes hold (names only: cheap, and any change renames)."""
    names: list[str] = []
    for prefix in prefixes:
        names += inventory.record_names(prefix)
        names.append("--")
    return hashlib.sha256("\n".join(names[:-1]).encode()).hexdigest()


def tree_stamp(root: Path) -> str:
    """Every name under a local source folder with its size, times and inode: a stat per file,
    no reads. Equal stamps mean nothing was edited; a different stamp sends the run to the
    planner, which compares content (a file only touched changes the stamp, not the build key).
    """
    digest = hashlib.sha256()
    stack = [str(root)]
    try:
        while stack:
            folder = stack.pop()
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda e: e.name)
            for entry in entries:
                if paths.untracked(entry.name):  # as the tree's content hash leaves them out
                    continue
                st = entry.stat(follow_symlinks=False)
                digest.update(
                    f"{entry.path}\0{st.st_mode}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\n".encode(
                        "utf-8", "surrogateescape"
                    )
                )
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    except OSError:
        return ""
    return digest.hexdigest()


def overrides() -> dict[str, str]:
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("CONDA_OVERRIDE_")}


@dataclass
class State:
    """What the last successful run was given; ``watched`` maps local index files to their stat."""

    env_sha256: str
    options: dict[str, str]
    watched: dict[str, list[int] | None] = field(default_factory=dict)
    records: str = ""
    trees: dict[str, str] = field(default_factory=dict)  # local source folder -> tree_stamp()
    pmpm_version: str = __version__
    format: int = FORMAT

    def save(self, prefix: Path) -> None:
        atomic_write_text(paths.state_file(prefix), json.dumps(asdict(self), indent=1, sort_keys=True))


def expected(env_bytes: bytes, options: dict[str, str]) -> State:
    return State(env_sha256=hashlib.sha256(env_bytes).hexdigest(), options={**options, **overrides()})


def watch(state: State, files: list[Path]) -> None:
    state.watched = {str(f): _stat_key(str(f)) for f in files}


def up_to_date(prefix: Path, want: State, stacks: list[Path] | None = None) -> bool:
    """``stacks``: every prefix of the environment (default: ``prefix`` alone)."""
    stacks = stacks or [prefix]
    path = paths.state_file(prefix)
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    # valid JSON of another shape (a hand edit, another tool's file) means a full run, not a crash
    if not isinstance(stored, dict):
        return False
    if stored.get("format") != FORMAT or stored.get("pmpm_version") != __version__:
        return False
    if stored.get("env_sha256") != want.env_sha256 or stored.get("options") != want.options:
        return False
    if any(pending(p) for p in stacks) or stored.get("volatile"):
        return False
    trees, watched = stored.get("trees", {}), stored.get("watched", {})
    if not isinstance(trees, dict) or not isinstance(watched, dict):
        return False
    if any(tree_stamp(Path(t)) != stamp for t, stamp in trees.items()):
        return False
    if any(_stat_key(f) != key for f, key in watched.items()):
        return False
    return stored.get("records") == records_digest(*stacks)
