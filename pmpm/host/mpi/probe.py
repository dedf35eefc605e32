"""Running an MPI's compiler wrapper and reading what it says: vendor, version, flags.

The wrapper is the only reliable witness of what a build gets (see :mod:`pmpm.host.mpi.choice`). It is run
with argument lists only, at most twice per wrapper and once per process (:data:`PROBES`).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pmpm.host.tools import ask

PROBE_TIMEOUT = 60.0  # seconds; a vendor wrapper may ask a licence server or a module system
WHERE = "_pmpm.mpi"

#: Wrapper names per language, most specific first; Debian suffixes them (``mpicxx.mpich``).
CXX_NAMES = ("mpicxx", "mpic++", "mpiCC")
FC_NAMES = ("mpifort", "mpif90", "mpif77")
EXEC_NAMES = ("mpiexec", "mpirun")
#: The Cray programming environment's compiler drivers link cray-mpich themselves; there is no mpicc.
CRAY_DRIVERS = frozenset({"cc", "CC", "ftn"})

CRAY_PATH = re.compile(r"/cray/pe/mpich/(\d+(?:\.\d+)+)/")
_V = r"(\d[\w.]*\w|\d)"


@dataclass(frozen=True)
class MPI:
    """One MPI as its wrapper describes it; recipes see it as ``{{ mpi.* }}``."""

    provider: str  # "external" | "conda" (its wrapper lives in PREFIX/bin)
    vendor: str  # "Open MPI" | "MPICH" | "Intel MPI" | "Cray MPICH" | "MVAPICH" | "unknown"
    version: str  # e.g. "4.1.4"; "" when the wrapper would not say
    mpicc: str  # absolute path of the C wrapper as found, not symlink-resolved (builds run this)
    mpicxx: str | None
    mpifort: str | None
    mpiexec: str | None
    prefix: str  # install prefix: the directory holding lib/ (and usually include/, bin/)
    compile_flags: tuple[str, ...]  # what the wrapper adds when compiling (-I...)
    link_flags: tuple[str, ...]  # what it adds when linking (-L... -l...)
    libraries: tuple[str, ...]  # real files of the MPI shared libraries those flags link
    version_string: str  # the MPI's own version text (first line), for the record
    mpicc_resolved: str = ""  # mpicc with symlinks followed: what identity() keys on
    compiler: str = ""  # the compiler the wrapper runs, as it names it (gcc, cc, icx...)

    def identity(self) -> str:
        """Stable text for build keys. Provider and the path as found are left out: the same MPI
        reached through ``/usr/bin/mpicc`` or ``/usr/bin/mpicc.openmpi`` builds the same thing,
        and two MPIs of one version differ in their libraries."""
        return " ".join([self.vendor, self.version or "?", self.mpicc_resolved, *self.libraries])

    def as_template(self) -> dict[str, str]:
        """What recipes see as ``mpi``. A wrapper this MPI lacks is left out rather than set to
        None, so a recipe using ``{{ mpi.fc }}`` fails on the missing key instead of running
        a program called ``None``."""
        values = {
            "cc": self.mpicc,
            "cxx": self.mpicxx,
            "fc": self.mpifort,
            "mpiexec": self.mpiexec,
            "vendor": self.vendor,
            "version": self.version,
            "prefix": self.prefix,
            "provider": self.provider,
        }
        return {key: value for key, value in values.items() if value is not None}

    def describe(self) -> list[tuple[str, str]]:
        """Rows for ``pmpm host``: enough to tell which MPI a build would link without running
        the wrappers by hand."""
        mpicc = self.mpicc
        if self.mpicc_resolved and self.mpicc_resolved != self.mpicc:
            mpicc += f" -> {self.mpicc_resolved}"
        rows = [
            ("mpi", f"{self.vendor} {self.version or '(version unknown)'} ({self.provider})"),
            ("mpicc", mpicc + (f" (wraps {self.compiler})" if self.compiler else "")),
            ("mpicxx", self.mpicxx or "(none)"),
            ("mpifort", self.mpifort or "(none)"),
            ("mpiexec", self.mpiexec or "(none)"),
            ("mpi prefix", self.prefix),
            ("mpi cflags", " ".join(self.compile_flags) or "(none)"),
            ("mpi ldflags", " ".join(self.link_flags) or "(none)"),
            ("mpi libraries", " ".join(self.libraries)),
        ]
        if self.version_string:
            rows.append(("mpi version", self.version_string))
        return rows


@dataclass(frozen=True)
class Probe:
    """What running one wrapper told: everything else is derived from the file system."""

    vendor: str
    version: str
    version_string: str
    compiler: str
    compile_flags: tuple[str, ...]
    link_flags: tuple[str, ...]
    cray: bool = False  # a Cray PE driver (cc/CC/ftn), not an mpicc


# -- parsing ------------------------------------------------------------------------------------


#: (vendor, pattern) in the order they must be tried: Cray's and MVAPICH's texts also say MPICH.
_VENDOR_PATTERNS = (
    ("Cray MPICH", rf"(?i)cray mpich,? version:?\s*{_V}"),
    (
        "Intel MPI",
        r"Intel\(R\) MPI Library(?: for Linux\* OS)?,? (?:Version )?(\d+(?:\.\d+)*)(?: Update (\d+))?",
    ),
    ("MVAPICH", rf"MVAPICH\d*,?\s+[Vv]ersion:?\s*{_V}"),
    ("Open MPI", rf"Open MPI v?{_V}"),
    ("MPICH", rf"MPICH\d*,?\s+[Vv]ersion:?\s*{_V}"),
)


def parse_version_text(text: str) -> tuple[str, str] | None:
    """A wrapper's or tool's version text → (vendor, version), or None when no MPI is named.

    Handles ``mpicc -v`` of the MPICH family (``mpicc for MPICH version 4.0.2``, ``mpicc for
    MVAPICH2 version 2.3.7``, ``mpicc for the Intel(R) MPI Library 2019 Update 12 for Linux*``),
    Open MPI's ``--showme:version``/``ompi_info --version`` and ``mpichversion``.
    """
    for vendor, pattern in _VENDOR_PATTERNS:
        found = re.search(pattern, text)
        if found is None:
            continue
        version = found.group(1)
        if vendor == "Intel MPI" and found.group(2):
            version += f".{found.group(2)}"  # "2019 Update 12" sorts as 2019.12
        return vendor, version
    return None


def split_command(text: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """The command a wrapper shows (``gcc -I... -L... -lmpi``) → (compiler, compile flags, link
    flags). Flags that matter to both steps (``-pthread``, ``-m64``) go to both, as Open MPI's own
    ``--showme:compile``/``--showme:link`` split does; ``-c`` and source files are dropped
    because they belong to the command, not the MPI."""
    try:
        tokens = shlex.split(text)  # Intel MPI quotes its paths; this is lexing, not a shell
    except ValueError:
        tokens = text.split()
    if not tokens:
        return "", (), ()
    compiler, rest = tokens[0], tokens[1:]
    compile_flags: list[str] = []
    link_flags: list[str] = []
    i = 0
    while i < len(rest):
        token = rest[i]
        i += 1
        if token == "-c" or re.search(r"\.(c|cc|cpp|cxx|f|f90|F90)$", token):
            continue
        group = [token]
        if token in _TWO_PART and i < len(rest):
            group.append(rest[i])
            i += 1
        kind = _flag_kind(token)
        if kind in ("compile", "both"):
            compile_flags += group
        if kind in ("link", "both"):
            link_flags += group
    return compiler, tuple(compile_flags), tuple(link_flags)


#: Options whose value may be the next word (``-I /x``, ``-Xlinker -rpath``).
_TWO_PART = frozenset(
    {"-I", "-L", "-l", "-D", "-U", "-isystem", "-idirafter", "-iquote", "-include", "-Xlinker", "-z"}
    | {"-rpath", "-framework"}
)


def _flag_kind(token: str) -> str:
    if token.startswith(("-I", "-D", "-U", "-isystem", "-idirafter", "-iquote", "-include")):
        return "compile"
    if token.startswith(("-L", "-l", "-Wl,", "-Xlinker", "-rpath", "-framework")) or token in (
        "-z",
        "-shared",
        "-rdynamic",
    ):
        return "link"
    if re.search(r"\.(so(\.\d+)*|a|dylib)$", token):
        return "link"
    return "both"


def link_search(link_flags: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
    """Link flags → (library names in link order, -L dirs then rpath dirs, library files named
    by path). Linker options come in several spellings: ``-Wl,-rpath,D``, ``-Wl,-rpath -Wl,D``,
    ``-Xlinker -rpath -Xlinker D``, and Cray's ``-Wl,--as-needed,-lmpi_gnu_123,--no-as-needed``."""
    names: list[str] = []
    dirs: list[str] = []
    rpaths: list[str] = []
    files: list[str] = []
    linker: list[str] = []  # what reaches the linker itself, in order
    tokens = list(link_flags)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token in ("-L", "-l", "-Xlinker") and i < len(tokens):
            token += ("" if token != "-Xlinker" else " ") + tokens[i]
            i += 1
        if token.startswith("-Xlinker "):
            linker.append(token.split(" ", 1)[1])
        elif token.startswith("-Wl,"):
            linker += token[4:].split(",")
        elif token.startswith("-L"):
            dirs.append(token[2:])
        elif token.startswith("-l"):
            names.append(token[2:])
        elif token.startswith("/") and re.search(r"\.so(\.\d+)*$", token):
            files.append(token)
    j = 0
    while j < len(linker):
        word = linker[j]
        j += 1
        if word in ("-rpath", "--rpath", "-R") and j < len(linker):
            rpaths.append(linker[j])
            j += 1
        elif word.startswith(("-rpath=", "--rpath=")):
            rpaths.append(word.split("=", 1)[1])
        elif word.startswith("-l"):
            names.append(word[2:])
        elif word.startswith("-L"):
            dirs.append(word[2:])
    return names, [d for d in dirs + rpaths if d], files


# -- running wrappers ---------------------------------------------------------------------------


#: (path as run, resolved path, its mtime) → what the wrapper said; None when it is no MPI wrapper
PROBES: dict[tuple[str, str, int], Probe | None] = {}


def run_probe(argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str] | None:
    return ask(argv, env, timeout=PROBE_TIMEOUT)


def probe_wrapper(wrapper: str, env: Mapping[str, str]) -> Probe | None:
    """Run the wrapper (once per executable per process) to learn what MPI it is."""
    resolved = os.path.realpath(wrapper)
    try:
        mtime = os.stat(resolved).st_mtime_ns
    except OSError:
        return None
    key = (wrapper, resolved, mtime)
    if key not in PROBES:
        PROBES[key] = _ask(wrapper, env)
    return PROBES[key]


def _ask(wrapper: str, env: Mapping[str, str]) -> Probe | None:
    """Open MPI answers ``--showme:version`` itself; the MPICH family passes it to the compiler,
    which fails harmlessly, and then ``-show -v`` prints the version line and the command in one
    run. (Open MPI drops its flags when ``-v`` is the only argument, so the order matters.)"""
    run_env = {**env, "LC_ALL": "C", "LANG": "C"}  # untranslated messages to parse
    if os.path.basename(wrapper) in CRAY_DRIVERS or "craype" in Path(os.path.realpath(wrapper)).parts:
        return _ask_cray(wrapper, run_env)
    asked = run_probe([wrapper, "--showme:version"], run_env)
    if asked is None:
        return None
    code, out, err = asked
    named = parse_version_text(out + err) if code == 0 else None
    if named and named[0] == "Open MPI":
        shown = run_probe([wrapper, "--showme"], run_env)
        if shown is None or shown[0] != 0 or not shown[1].strip():
            return None
        compiler, compile_flags, link_flags = split_command(shown[1].strip().splitlines()[-1])
        line = _strip_argv0(next(ln for ln in (out + err).splitlines() if "Open MPI" in ln))
        own = _sibling_version(wrapper, "ompi_info", ["--version"], named[1], run_env)
        return Probe("Open MPI", named[1], own or line, compiler, compile_flags, link_flags)
    shown = run_probe([wrapper, "-show", "-v"], run_env)
    if shown is None or shown[0] != 0:
        return None
    lines = [ln.strip() for ln in shown[1].splitlines() if ln.strip()]
    if not lines:
        return None
    compiler, compile_flags, link_flags = split_command(lines[-1])
    if "-v" in compile_flags:  # ours, echoed back in the command
        compile_flags = _drop_first(compile_flags, "-v")
        link_flags = _drop_first(link_flags, "-v")
    about = "\n".join(lines[:-1]) + "\n" + shown[2]
    named = parse_version_text(about)
    vendor, version = named or ("unknown", "")
    line = next((ln.strip() for ln in about.splitlines() if version and version in ln), "")
    own = _sibling_version(wrapper, "mpichversion", [], version, run_env) if named else None
    return Probe(vendor, version, own or line, compiler, compile_flags, link_flags)


def _ask_cray(driver: str, env: Mapping[str, str]) -> Probe | None:
    """Cray's drivers print the flags of the loaded PE modules; the MPI is whatever cray-mpich
    they add, and its version is in its path (``/opt/cray/pe/mpich/8.1.27/...``)."""
    asked = run_probe([driver, "--cray-print-opts=all"], env)
    if asked is None or asked[0] != 0 or not asked[1].strip():
        return None
    _, compile_flags, link_flags = split_command("cc " + asked[1].strip())
    version = CRAY_PATH.search(asked[1])
    found = version.group(1) if version else env.get("CRAY_MPICH_VERSION", "")
    line = f"Cray MPICH {found}".strip() if version or found else ""
    return Probe("Cray MPICH", found, line, driver, compile_flags, link_flags, cray=True)


def _drop_first(flags: tuple[str, ...], token: str) -> tuple[str, ...]:
    if token not in flags:
        return flags
    at = flags.index(token)
    return flags[:at] + flags[at + 1 :]


def _strip_argv0(line: str) -> str:
    # Open MPI prefixes its answer with the name it was run as ("/usr/bin/mpicc.openmpi: Open MPI")
    at = line.find("Open MPI")
    return line[at:].strip() if at >= 0 else line.strip()


def _sibling_version(
    wrapper: str, tool: str, args: list[str], version: str, env: Mapping[str, str]
) -> str | None:
    """The first line of the MPI's own version tool (``ompi_info``, ``mpichversion``) next to the
    wrapper, only if it names the same version: on Debian one ``/usr/bin`` holds the tools of
    every installed MPI, so a neighbour proves nothing by its location alone."""
    if not version:
        return None
    for folder in dict.fromkeys([os.path.dirname(wrapper), os.path.dirname(os.path.realpath(wrapper))]):
        candidate = os.path.join(folder, tool)
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        asked = run_probe([candidate, *args], env)
        if asked is None or asked[0] != 0:
            continue
        first = next((ln for ln in asked[1].splitlines() if ln.strip()), "")
        first = " ".join(first.split())
        if re.search(rf"(?<![\d.]){re.escape(version)}(?![\d.])", first):
            return first
    return None


# -- libraries and prefix -----------------------------------------------------------------------
