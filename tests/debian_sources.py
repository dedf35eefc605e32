"""Real upstream sources for build tests, taken from Debian's archive with apt's own client.

Debian keeps every upstream tarball it ships, byte for byte, as ``*.orig.tar.*``: a stable, signed
and mirrored place to get small real projects of each build system. We reach it through the mirrors
this machine is already configured for (so no host name lives in our code) and with a private apt
state, so the system's apt configuration and package lists are never touched.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

APT_ETC = Path("/etc/apt")
CACHE_ENV = "PMPM_TEST_DEBSRC_CACHE"


class DebianSourceUnavailable(RuntimeError):
    """apt is missing or cannot reach the archive: the tests that need sources skip with this reason."""


@dataclass(frozen=True)
class AptSource:
    uri: str
    suite: str
    components: tuple[str, ...]
    options: tuple[str, ...] = ()  # one-line ``[key=value ...]`` options, e.g. signed-by

    def deb_src_line(self) -> str:
        opts = f"[{' '.join(self.options)}] " if self.options else ""
        return f"deb-src {opts}{self.uri} {self.suite} {' '.join(self.components)}".rstrip()


def cache_root() -> Path:
    """Downloads survive between sessions: orig tarballs never change for a given version."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pmpm-test-debsrc"


def parse_one_line(text: str) -> list[AptSource]:
    """``deb [opts] uri suite comp...`` lines; deb-src lines count too (same archive)."""
    sources = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kind, _, rest = line.partition(" ")
        if kind not in ("deb", "deb-src"):
            continue
        options: tuple[str, ...] = ()
        rest = rest.strip()
        if rest.startswith("["):
            inside, _, rest = rest[1:].partition("]")
            options = tuple(inside.split())
        words = rest.split()
        if len(words) >= 2:
            sources.append(AptSource(words[0], words[1], tuple(words[2:]), options))
    return sources


def parse_deb822(text: str) -> list[AptSource]:
    """``*.sources`` stanzas (URIs/Suites/Components), honouring ``Enabled: no``."""
    sources = []
    for stanza in _stanzas(text):
        if stanza.get("enabled", "yes").lower() == "no":
            continue
        if not {"deb", "deb-src"} & set(stanza.get("types", "").split()):
            continue
        options = (f"signed-by={stanza['signed-by']}",) if stanza.get("signed-by", "").startswith("/") else ()
        for uri in stanza.get("uris", "").split():
            for suite in stanza.get("suites", "").split():
                comps = tuple(stanza.get("components", "").split())
                sources.append(AptSource(uri, suite, comps, options))
    return sources


def _stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = None
    for raw in [*text.splitlines(), ""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
        elif raw[0] in " \t" and key:
            current[key] += " " + raw.strip()  # continuation line (e.g. an inline key block)
        else:
            name, _, value = raw.partition(":")
            key = name.strip().lower()
            current[key] = value.strip()
    return stanzas


def system_sources(etc: Path | None = None) -> list[AptSource]:
    """The archives this machine's apt already uses, deduplicated, in file order."""
    etc = etc or APT_ETC
    found: list[AptSource] = []
    main = etc / "sources.list"
    if main.is_file():
        found += parse_one_line(main.read_text())
    parts = etc / "sources.list.d"
    if parts.is_dir():
        for path in sorted(parts.iterdir()):
            if path.suffix == ".list":
                found += parse_one_line(path.read_text())
            elif path.suffix == ".sources":
                found += parse_deb822(path.read_text())
    return list(dict.fromkeys(found))


def _apt_options(state: Path) -> list[str]:
    return [
        "-o",
        f"Dir::Etc::SourceList={state / 'sources.list'}",
        "-o",
        f"Dir::Etc::SourceParts={state / 'sources.list.d'}",
        "-o",
        f"Dir::State::Lists={state / 'lists'}",
        "-o",
        f"Dir::Cache={state / 'cache'}",
        "-o",
        "Acquire::Retries=2",
        "-q",
    ]


@functools.cache
def _updated_state() -> Path | DebianSourceUnavailable:
    """One ``apt-get update`` per session; a failure is remembered too, so offline skips are quick."""
    try:
        return _update()
    except DebianSourceUnavailable as exc:
        return exc


def _update() -> Path:
    if shutil.which("apt-get") is None:
        raise DebianSourceUnavailable("apt-get is not installed")
    sources = system_sources()
    if not sources:
        raise DebianSourceUnavailable(f"no apt sources configured under {APT_ETC}")
    state = cache_root() / "apt-state"
    for sub in ("sources.list.d", "lists/partial", "cache/archives/partial"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "sources.list").write_text("".join(s.deb_src_line() + "\n" for s in sources))
    proc = _run(["apt-get", *_apt_options(state), "update"], cwd=state)
    # Some configured archives may publish no sources (third-party repos): apt then exits non-zero
    # but keeps the indexes it did get, so only an empty result is fatal.
    if not any((state / "lists").glob("*Sources*")):
        raise DebianSourceUnavailable(f"apt-get update of deb-src lists failed: {_tail(proc)}")
    return state


def fetch_debian_orig(package: str, dest: Path) -> Path:
    """Copy the upstream ``*.orig.tar.*`` of Debian source package ``package`` into ``dest``.

    Downloads once into the cache (``$PMPM_TEST_DEBSRC_CACHE`` or ``~/.cache/pmpm-test-debsrc``)
    and reuses it afterwards, so a warm cache needs no network at all.
    """
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:  # test workers in parallel share one apt state
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _fetch_locked(package, dest)


def _fetch_locked(package: str, dest: Path) -> Path:
    cached = cache_root() / "pkgs" / package
    orig = _find_orig(cached)
    if orig is None:
        state = _updated_state()
        if isinstance(state, DebianSourceUnavailable):
            raise state
        partial = cached.with_name(package + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        proc = _run(["apt-get", *_apt_options(state), "source", "--download-only", package], cwd=partial)
        if proc.returncode != 0 or _find_orig(partial) is None:
            shutil.rmtree(partial, ignore_errors=True)
            raise DebianSourceUnavailable(f"apt-get source {package} failed: {_tail(proc)}")
        shutil.rmtree(cached, ignore_errors=True)
        partial.rename(cached)
        orig = _find_orig(cached)
        assert orig is not None
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / orig.name
    if not target.exists():
        shutil.copyfile(orig, target)
    return target


def debian_source_version(package: str) -> str | None:
    """The Debian version of the cached download (from its ``.dsc`` name), for reports."""
    dscs = sorted((cache_root() / "pkgs" / package).glob("*.dsc"))
    return dscs[0].stem.split("_", 1)[1] if dscs else None


def _find_orig(folder: Path) -> Path | None:
    if not folder.is_dir():
        return None
    origs = sorted(p for p in folder.glob("*.orig.tar.*") if not p.name.endswith(".asc"))
    return origs[0] if origs else None


def _run(argv: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired as exc:
        raise DebianSourceUnavailable(f"{' '.join(argv[:1] + argv[-2:])} timed out") from exc


def _tail(proc: subprocess.CompletedProcess[str]) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    lines = [line for line in lines if line.startswith("E:")] or lines  # errors, not sandbox warnings
    return " | ".join(lines[-3:]) or f"exit status {proc.returncode}"
