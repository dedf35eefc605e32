"""Every place pmpm keeps files, decided here once.

Two roots: pmpm's **cache** (``PMPM_CACHE_DIR``, else ``$XDG_CACHE_HOME/pmpm``, else
``~/.cache/pmpm``), shared by every environment of a user, and pmpm's **folder inside a prefix**
(``PREFIX/conda-meta/pmpm``), which belongs to that environment. A system_install root keeps the
environment's own files in ``ROOT/.pmpm`` instead (see :mod:`pmpm.env.layout`). Nothing else in pmpm
joins these names, so moving or renaming one is a change here only.

This module must stay cheap to import: it is on the no-op path (standard library only).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

# --------------------------------------------------------------------------- the cache


def cache_root() -> Path:
    """pmpm's cache; ``PMPM_CACHE_DIR`` moves (and isolates) everything below."""
    base = os.environ.get("PMPM_CACHE_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "pmpm"


def package_cache() -> Path:
    """Extracted conda packages, as py-rattler's installer keeps them."""
    return cache_root() / "pkgs"


def repodata_cache() -> Path:
    return cache_root() / "repodata"


def build_channel() -> Path:
    """pmpm's own conda channel: every compiled package lands there (see :mod:`pmpm.build.binary_cache`)."""
    return cache_root() / "channel"


def package_log(package: Path) -> Path:
    """The log of the build that made a compiled package, kept beside its ``.conda`` (in the
    build channel and in a shared cache): ``NAME-VERSION-BUILD.log``."""
    return Path(package).with_name(Path(package).name.removesuffix(".conda") + ".log")


def sources_dir() -> Path:
    """Downloaded sources and copies of local trees (:class:`pmpm.sources.cache.SourceCache`)."""
    return cache_root() / "sources"


def log_dir() -> Path:
    """Tool logs; ``PMPM_LOG_DIR`` moves them alone."""
    return Path(os.environ.get("PMPM_LOG_DIR") or cache_root() / "logs")


def build_dir() -> Path:
    """Build folders of compiled packages (one per package and key)."""
    return cache_root() / "build"


def dev_dir() -> Path:
    """Kept build folders of local trees (``dev:`` packages), rebuilt incrementally."""
    return cache_root() / "dev"


def build_prefix_dir() -> Path:
    """Padded build prefixes, so installs relocate into any PREFIX."""
    return cache_root() / "bp"


def python_shims_dir() -> Path:
    return cache_root() / "python-shims"


def host_target_cache() -> Path:
    """archspec's name for this CPU, remembered per CPU (:mod:`pmpm.host.target`)."""
    return cache_root() / "host-target.json"


# --------------------------------------------------------------------------- inside a prefix

#: conda's own folder in a prefix: package records and conda's history
CONDA_META = "conda-meta"
#: pmpm's own folder inside a prefix (lock, journal, no-op state, build inputs and logs, record)
PMPM_DIR = Path(CONDA_META) / "pmpm"
#: pmpm's folder at a system_install root (layout, record, state)
ROOT_DIR = ".pmpm"


def conda_meta(prefix: Path) -> Path:
    return Path(prefix) / CONDA_META


def conda_history(prefix: Path) -> Path:
    """conda's ``conda-meta/history``, which pmpm writes as conda does (:mod:`pmpm.conda.history`)."""
    return conda_meta(prefix) / "history"


def conda_state(prefix: Path) -> Path:
    """conda's ``conda-meta/state``: the environment's variables (``conda env config vars``)."""
    return conda_meta(prefix) / "state"


def pmpm_dir(prefix: Path) -> Path:
    return Path(prefix) / PMPM_DIR


#: the files of a run in progress (the prefix lock, the journal): never part of a snapshot
RUN_FILES = ("lock", "journal")


def lock_file(prefix: Path) -> Path:
    return pmpm_dir(prefix) / RUN_FILES[0]


def journal_dir(prefix: Path) -> Path:
    return pmpm_dir(prefix) / RUN_FILES[1]


def state_file(prefix: Path) -> Path:
    """The no-op fingerprint of the last successful run (:mod:`pmpm.env.state`)."""
    return pmpm_dir(prefix) / "state.json"


def builds_dir(prefix: Path) -> Path:
    """The stored inputs of each compiled package, one ``NAME.json`` per package."""
    return pmpm_dir(prefix) / "builds"


def build_inputs_file(prefix: Path, name: str) -> Path:
    return builds_dir(prefix) / f"{name}.json"


def installed_logs_dir(prefix: Path) -> Path:
    """The build logs of the compiled packages installed in a prefix, kept as long as they are."""
    return pmpm_dir(prefix) / "logs"


def installed_log(prefix: Path, name: str, version: str, build: str) -> Path:
    return installed_logs_dir(prefix) / f"{name}-{version}-{build}.log"


def from_lock_dir(prefix: Path) -> Path:
    """Scratch folder of a rebuild from a lock file."""
    return pmpm_dir(prefix) / "from-lock"


def root_dir(root: Path) -> Path:
    return Path(root) / ROOT_DIR


def host_search_path(stacks: Sequence[Path | None]) -> str:
    """PATH without the environment's own ``bin`` folders: where the host's tools are found."""
    drop = {os.path.realpath(Path(p) / "bin") for p in stacks if p is not None}
    path = os.environ.get("PATH", os.defpath).split(os.pathsep)
    return os.pathsep.join(p for p in path if p and os.path.realpath(p) not in drop)


#: names never copied, hashed or stamped in a local source tree: VCS data and the user's own
#: build output (builds write them, so they would make every tree look edited)
UNTRACKED_DIRS = frozenset({".git", "__pycache__", "build", "_build"})
UNTRACKED_SUFFIXES = (".egg-info",)


def untracked(name: str) -> bool:
    """Is this entry of a local source tree left out of its copy, hash and stamp?"""
    return name in UNTRACKED_DIRS or name.endswith(UNTRACKED_SUFFIXES)
