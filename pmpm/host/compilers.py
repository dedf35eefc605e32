"""The compilers a build uses, found and identified by running them.

A compiler's name says little (``cc`` may be anything, ``gcc`` a ccache symlink), so each
candidate is run once per process with ``--version`` and identified by what it prints: archspec's
vendor name and a dotted version, which :mod:`pmpm.host.detect` turns into tuning flags.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pmpm.errors import PmpmError
from pmpm.host.tools import ask

LANGS = ("cc", "cxx", "fc")
LANG_NAMES = {"cc": "C", "cxx": "C++", "fc": "Fortran"}


#: PATH search order per language when no compiler is named: the system's default driver first
#: (``cc`` is what the admins chose, and the Cray wrapper on a Cray), then the common vendors.
SEARCH = {
    "cc": ("cc", "gcc", "clang"),
    "cxx": ("c++", "g++", "clang++"),
    "fc": ("gfortran", "flang", "flang-new", "ftn"),
}
#: On a Cray the C++ and Fortran wrappers must go with the C wrapper; ``CC`` is searched only then
#: because on a case-insensitive file system ``CC`` is the C compiler.
CRAY_SEARCH = {"cxx": ("CC",), "fc": ("ftn",)}
#: conda's compiler packages (conda-forge's ``gcc_linux-64``, ``clang_osx-arm64``...) install
#: drivers named after their target triplet, and the plain ``gcc`` packages add ``gcc``; in
#: conda_install mode these are searched in PREFIX/bin before the host's PATH.
CONDA_SEARCH = {
    "cc": ("*-conda*-linux-gnu-cc", "*-conda*-linux-gnu-gcc", "*-apple-darwin*-clang", "gcc", "clang"),
    "cxx": ("*-conda*-linux-gnu-c++", "*-conda*-linux-gnu-g++", "*-apple-darwin*-clang++", "g++", "clang++"),
    "fc": ("*-conda*-linux-gnu-gfortran", "gfortran", "flang-new", "flang"),
}

VERSION_TIMEOUT = 60.0  # seconds; licensed compilers may ask a licence server before answering

#: Programs a compiler name may be a symlink to without being the compiler: following the link
#: would record (and later run) the launcher instead of the compiler.
_LAUNCHERS = frozenset({"ccache", "sccache", "distcc", "icecc", "buildcache", "llvm", "busybox"})
#: The switch that stores the command line in ``.GCC.command.line``, per compiler family; the


@dataclass(frozen=True)
class Compiler:
    """One compiler as found, identified by running it (its name says little: ``cc`` may be anything)."""

    lang: str  # "cc" | "cxx" | "fc"
    path: str  # absolute path of the executable
    vendor: str  # archspec compiler name: gcc, clang, apple-clang, intel, oneapi, nvhpc, aocc, cce, ...
    version: str  # dotted digits, as archspec compares them, e.g. "12.2.0"
    version_string: str  # first line of ``--version``, for the record


def dotted_version(version: str) -> str:
    """The leading dotted digits of a version (``12.2.0-14`` -> ``12.2.0``), as archspec compares them."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    return match.group(0) if match else ""


def find_compilers(
    explicit: Mapping[str, str] | None = None,
    *,
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    conda_bin: Path | None = None,
) -> dict[str, Compiler]:
    """The compilers builds use: named ones (a name looked up on PATH, or a path) must work;
    otherwise the first working candidate per language, and a language may have none.

    ``conda_bin`` (an environment's ``bin``) is searched first, for conda's compiler packages:
    an env that installs them asks for them, as conda-build's ``{{ compiler('c') }}`` does.
    """
    env = os.environ if env is None else env
    search_path = path if path is not None else env.get("PATH", os.defpath)
    explicit = dict(explicit or {})
    unknown = sorted(set(explicit) - set(LANGS))
    if unknown:
        raise PmpmError(
            f"unknown compiler language {', '.join(map(repr, unknown))}",
            hint=f"compilers are named per language: {', '.join(LANGS)}",
        )
    found: dict[str, Compiler] = {}
    for lang, name in explicit.items():
        found[lang] = _explicit(lang, name, search_path, env)
    cray = any(_is_cray(c) for c in found.values())
    for lang in LANGS:
        if lang in found:
            continue
        conda = _in_conda_bin(lang, conda_bin, env) if conda_bin is not None else None
        if conda is not None:
            found[lang] = conda
            continue
        if lang == "cc":
            candidates = SEARCH[lang]
        else:
            candidates = (CRAY_SEARCH.get(lang, ()) if cray else ()) + SEARCH[lang]
        for name in candidates:
            hit = shutil.which(name, path=search_path)
            if hit is None:
                continue
            compiler = _identify(lang, hit, env)
            if compiler is not None:
                found[lang] = compiler
                cray = cray or _is_cray(compiler)
                break
    return found


def _in_conda_bin(lang: str, conda_bin: Path, env: Mapping[str, str]) -> Compiler | None:
    for pattern in CONDA_SEARCH[lang]:
        for hit in sorted(Path(conda_bin).glob(pattern)):
            if os.access(hit, os.X_OK):
                compiler = _identify(lang, str(hit), env)
                if compiler is not None:
                    return compiler
    return None


def _explicit(lang: str, name: str, search_path: str, env: Mapping[str, str]) -> Compiler:
    where = f"compilers: {lang}"
    hit: str | None
    if os.sep in name or (os.altsep and os.altsep in name):
        hit = os.path.abspath(os.path.expanduser(name))
        if not (os.path.isfile(hit) and os.access(hit, os.X_OK)):
            raise PmpmError(
                f"{LANG_NAMES[lang]} compiler {name!r} does not exist or is not executable",
                where=where,
                hint="give the full path of an installed compiler, or a name found on PATH",
            )
    else:
        hit = shutil.which(name, path=search_path)
        if hit is None:
            raise PmpmError(
                f"{LANG_NAMES[lang]} compiler {name!r} is not on PATH",
                where=where,
                hint="install it, load its module, or give its full path",
            )
    compiler = _identify(lang, hit, env)
    if compiler is None:
        raise PmpmError(
            f"{hit} does not answer --version like any compiler pmpm knows",
            where=where,
            hint="name a gcc, clang, Intel, NVIDIA HPC, AOCC or Cray compiler",
        )
    return compiler


def _is_cray(compiler: Compiler) -> bool:
    # The wrappers live in craype whatever compiler they wrap; only Cray's own compiler says so.
    return compiler.vendor == "cce" or "craype" in compiler.path.split(os.sep)


#: (path as run, mtime of the resolved executable) → (vendor, version, version line)
IDENTITIES: dict[tuple[str, int], tuple[str, str, str] | None] = {}


def _identify(lang: str, found: str, env: Mapping[str, str]) -> Compiler | None:
    """Run the compiler (once per executable per process) to learn what it is; None if it does
    not run or is not recognisable, so the PATH search can move on."""
    resolved = _resolve(found, lang)
    try:
        mtime = os.stat(resolved).st_mtime_ns
    except OSError:
        return None
    key = (found, mtime)
    if key not in IDENTITIES:
        IDENTITIES[key] = _ask(found, env)
    identity = IDENTITIES[key]
    if identity is None:
        return None
    vendor, version, line = identity
    return Compiler(lang=lang, path=resolved, vendor=vendor, version=version, version_string=line)


def _resolve(path: str, lang: str) -> str:
    """Follow symlinks to the real executable (``/usr/bin/cc`` → ``x86_64-linux-gnu-gcc-12``) so
    the record names the compiler, but stop where the link name carries meaning: ``clang++`` is a
    link to ``clang`` that only links C++ when called by its own name, and ``gcc`` may be a link
    to ``ccache``."""
    current = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))), os.path.basename(path))
    for _ in range(64):
        if not os.path.islink(current):
            return os.path.realpath(current)
        target = os.path.join(os.path.dirname(current), os.readlink(current))
        target = os.path.join(os.path.realpath(os.path.dirname(target)), os.path.basename(target))
        name, here = os.path.basename(target), os.path.basename(current)
        if re.sub(r"[-.\d]+$", "", name) in _LAUNCHERS:
            return current
        if lang == "cxx" and _cxx_name(here) and not _cxx_name(name):
            return current
        current = target
    return current


def _cxx_name(name: str) -> bool:
    return "++" in name or "cxx" in name.lower() or name == "CC" or name.startswith(("icpc", "icpx"))


def _ask(path: str, env: Mapping[str, str]) -> tuple[str, str, str] | None:
    run_env = {**env, "LC_ALL": "C", "LANG": "C"}  # untranslated messages to parse
    result = _run([path, "--version"], run_env)
    if result is None:
        return None
    out, err = result
    text = out if out.strip() else err
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    identity = parse_version_text(text)
    if identity is None:
        return None
    vendor, version = identity
    if vendor == "gcc" and not re.fullmatch(r"\d+\.\d+\.\d+", version):
        # some distributions print only the major version; gcc itself knows better
        for flag in ("-dumpfullversion", "-dumpversion"):
            asked = _run([path, flag], run_env)
            if asked and dotted_version(asked[0]):
                version = dotted_version(asked[0])
                break
    return vendor, version, line


def _run(argv: list[str], env: Mapping[str, str]) -> tuple[str, str] | None:
    asked = ask(argv, env, timeout=VERSION_TIMEOUT)
    return None if asked is None else (asked[1], asked[2])


_V = r"(\d+(?:\.\d+)+)"


def parse_version_text(text: str) -> tuple[str, str] | None:
    """``--version`` output → (archspec vendor, dotted version), or None when unrecognised.

    The first line identifies every vendor (Cray's wrappers print the wrapped compiler's line,
    so a wrapped gcc is a gcc); order matters because the LLVM-based vendors also say "clang".
    """
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return None
    first = lines[0]
    low = first.lower()
    checks: list[tuple[bool, str, str]] = [
        ("cray" in low, "cce", rf"(?i)version\s*:?\s*{_V}"),
        ("apple clang" in low or "apple llvm" in low, "apple-clang", rf"version {_V}"),
        ("aocc" in text.lower(), "aocc", r"AOCC[_.](?:LLVM\.)?(\d+[._]\d+(?:[._]\d+)?)"),
        ("oneapi" in low or "(ifx)" in low, "oneapi", r"(\d{4}\.\d+(?:\.\d+)*)"),
        (bool(re.search(r"\((ICC|IFORT|ICPC)\)", first)), "intel", rf"\((?:ICC|IFORT|ICPC)\) {_V}"),
        (
            bool(re.match(r"(nvc|nvc\+\+|nvfortran|pgcc|pgc\+\+|pgfortran|pgf90)\s+\d", first)),
            "nvhpc",
            r"\s(\d+\.\d+)",
        ),
        (bool(re.search(r"\b(clang|flang-new|flang) version \d", first)), "clang", rf"version {_V}"),
        (_is_gcc(first, text), "gcc", rf"\(.*?\) {_V}"),
    ]
    for matched, vendor, pattern in checks:
        if not matched:
            continue
        source = text if vendor == "aocc" else first
        version = re.search(pattern, source)
        if version is None and vendor == "gcc":
            version = re.search(rf"\s{_V}", first)
        return vendor, version.group(1).replace("_", ".") if version else ""
    return None


def _is_gcc(first: str, text: str) -> bool:
    # Every GNU tool prints the FSF copyright (``true --version`` would pass for a compiler);
    # only GCC's drivers add this sentence, and gfortran names itself instead.
    return "Free Software Foundation" in text and (
        "This is free software; see the source for copying conditions" in text
        or first.startswith("GNU Fortran")
    )
