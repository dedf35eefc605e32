"""The machine builds are tuned for: its CPU target, its compilers, and the exact flags between them.

Compiled packages are only worth building from source when they are tuned for the CPU they run on,
and only reproducible when the tuning is written down. So the target is always a concrete archspec
microarchitecture name (``icelake``, ``x86_64_v3``), never ``-march=native`` whose meaning depends
on the machine that happens to run the compiler; the flags are archspec's answer for that target
and each compiler's vendor and version; and every build records its command line in the objects
(``-frecord-gcc-switches``) so ``readelf -p .GCC.command.line`` can prove what was used.

Building on a login node for compute nodes of another kind is the one legitimate reason to target
a CPU this machine cannot run: set ``PMPM_ALLOW_FOREIGN_TARGET=1`` for that.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import archspec.cpu
from archspec.cpu import Microarchitecture, UnsupportedMicroarchitecture

from pmpm.builders import Flags
from pmpm.errors import PmpmError
from pmpm.tools import ask

LANGS = ("cc", "cxx", "fc")
LANG_NAMES = {"cc": "C", "cxx": "C++", "fc": "Fortran"}
FLAG_NAMES = {"cc": "cflags", "cxx": "cxxflags", "fc": "fflags"}

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

ALLOW_FOREIGN = "PMPM_ALLOW_FOREIGN_TARGET"
VERSION_TIMEOUT = 60.0  # seconds; licensed compilers may ask a licence server before answering

#: Programs a compiler name may be a symlink to without being the compiler: following the link
#: would record (and later run) the launcher instead of the compiler.
_LAUNCHERS = frozenset({"ccache", "sccache", "distcc", "icecc", "buildcache", "llvm", "busybox"})
#: The switch that stores the command line in ``.GCC.command.line``, per compiler family; the
#: LLVM-based C/C++ drivers spell it differently from gcc (see :func:`record_flag`).
_RECORD_FLAG = {"gcc": "-frecord-gcc-switches", "clang": "-frecord-command-line"}
_CLANG_FAMILY = frozenset({"clang", "aocc", "oneapi"})


#: what every CPU of a family has by its ABI; archspec lists no features for the generic
#: ``x86_64`` and ``aarch64`` targets, and a recipe choosing SIMD kernels must still see them
ABI_FEATURES = {"x86_64": ("mmx", "sse", "sse2"), "aarch64": ("asimd", "fp")}


@dataclass(frozen=True)
class Compiler:
    """One compiler as found, identified by running it (its name says little: ``cc`` may be anything)."""

    lang: str  # "cc" | "cxx" | "fc"
    path: str  # absolute path of the executable
    vendor: str  # archspec compiler name: gcc, clang, apple-clang, intel, oneapi, nvhpc, aocc, cce, ...
    version: str  # dotted digits, as archspec compares them, e.g. "12.2.0"
    version_string: str  # first line of ``--version``, for the record


@dataclass(frozen=True)
class HostProfile:
    """The target and compilers one run builds with; recipes render against it, records keep it."""

    target: str  # resolved archspec microarchitecture name, never "native"
    vendor: str  # e.g. "GenuineIntel"; "generic" for the x86_64_vN levels
    family: str  # e.g. "x86_64"
    features: tuple[str, ...]  # sorted feature names of the target
    detected: str  # the host's own microarchitecture (differs from target when overridden)
    compilers: dict[str, Compiler] = field(default_factory=dict, hash=False)

    @property
    def microarchitecture(self) -> Microarchitecture:
        return _microarchitecture(self.target)

    def arch_flags(self, lang: str) -> str:
        """Only the tuning part (``-march``/``-mtune`` or the vendor's equivalent), for tools that
        take the optimisation level separately (CMake build types, Meson ``buildtype``)."""
        return target_flags(self.microarchitecture, self._compiler(lang))

    def flags(self, *, optimize: str = "-O2") -> Flags:
        """Flags for every language that has a compiler; a missing language gets none, so a
        recipe that needs it fails on the missing compiler rather than on stray flags."""
        target = self.microarchitecture
        per_lang = {
            FLAG_NAMES[lang]: compiler_flags(target, compiler, optimize=optimize)
            for lang, compiler in self.compilers.items()
            if lang in FLAG_NAMES
        }
        return Flags(**per_lang)

    def as_template(self) -> dict:
        """What recipes see as ``target``: plain data, so templates cannot call into archspec."""
        return {
            "name": self.target,
            "vendor": self.vendor,
            "family": self.family,
            "features": list(self.features),
            "detected": self.detected,
        }

    def describe(self) -> list[tuple[str, str]]:
        """Rows for ``pmpm host``. A compiler that cannot build for the target shows why instead
        of its flags, so the command still explains the whole machine."""
        rows = [("target", self.target)]
        if self.detected != self.target:
            rows.append(("detected", self.detected))
        rows += [
            ("vendor", self.vendor),
            ("family", self.family),
            ("features", " ".join(self.features) or "(none)"),
        ]
        target = self.microarchitecture
        for lang in LANGS:
            compiler = self.compilers.get(lang)
            if compiler is None:
                rows.append((lang, f"(no {LANG_NAMES[lang]} compiler found)"))
                continue
            rows.append((lang, f"{compiler.vendor} {compiler.version} {compiler.path}"))
            try:
                flags = compiler_flags(target, compiler)
                if not target_flags(target, compiler):
                    flags += f"  (archspec knows no tuning flags for {compiler.vendor})"
            except PmpmError as err:
                flags = f"unavailable: {err.message}"
            rows.append((FLAG_NAMES[lang], flags))
        return rows

    def _compiler(self, lang: str) -> Compiler:
        if lang not in LANG_NAMES:
            raise PmpmError(f"unknown language {lang!r}", hint=f"use one of {', '.join(LANGS)}")
        compiler = self.compilers.get(lang)
        if compiler is None:
            raise PmpmError(
                f"no {LANG_NAMES[lang]} compiler found",
                hint=f"install one or name it explicitly (compilers: {lang}: /path/to/compiler)",
            )
        return compiler


# -- targets ------------------------------------------------------------------------------------


def known_targets(family: str | None = None) -> list[str]:
    """Every name ``target:`` accepts (optionally of one family), for ``pmpm host --targets``."""
    names = archspec.cpu.TARGETS
    return sorted(n for n, t in names.items() if family is None or t.family.name == family)


def resolve_target(name: str) -> Microarchitecture:
    """A user's target name → archspec's microarchitecture.

    ``host`` (and gcc's ``native``, which would otherwise leak into flags) mean this machine's
    own microarchitecture, resolved to its name. gcc spells the generic levels with dashes
    (``x86-64-v3``), archspec with underscores; both are accepted.
    """
    wanted = name.strip().lower()
    if wanted in ("host", "native"):
        return archspec.cpu.host()
    targets = archspec.cpu.TARGETS
    for candidate in (wanted, wanted.replace("-", "_")):
        if candidate in targets:
            return targets[candidate]
    close = difflib.get_close_matches(wanted.replace("-", "_"), list(targets), n=5, cutoff=0.6)
    message = f"unknown target {name!r}"
    if close:
        message += f"; did you mean {', '.join(close)}?"
    raise PmpmError(
        message,
        hint="`pmpm host --targets` lists every known target; `host` means this machine",
    )


def _microarchitecture(name: str) -> Microarchitecture:
    # A host archspec cannot classify comes back as a generic target that is not in TARGETS.
    host = archspec.cpu.host()
    return host if name == host.name else resolve_target(name)


def _check_runs_here(target: Microarchitecture, host: Microarchitecture, env: Mapping[str, str]) -> None:
    """Refuse targets whose binaries would not run here: a build tuned for a CPU this machine is
    not would crash with illegal instructions in its own tests, or worse, at the user's."""
    if target == host or target < host:
        return
    if env.get(ALLOW_FOREIGN, "").strip().lower() in ("1", "true", "yes", "on"):
        return
    if target.family != host.family:
        why = (
            f"{target.name} belongs to the {target.family.name} family and this machine is "
            f"{host.family.name} ({host.name})"
        )
    else:
        missing = sorted(set(target.features) - _cpu_features(host))
        why = f"this {host.name} CPU is not a {target.name}"
        if target.vendor not in ("generic", host.vendor):
            why += f" ({target.name} is for {target.vendor} CPUs, this one is {host.vendor})"
        if missing:
            why += f"; it lacks {', '.join(missing)}"
    raise PmpmError(
        f"binaries tuned for target {target.name!r} would not run on this machine: {why}",
        hint=(
            f"use `host` ({host.name}) or one of its ancestors "
            f"({', '.join(a.name for a in host.ancestors)}); "
            f"to build here for other machines set {ALLOW_FOREIGN}=1"
        ),
    )


def _cpu_features(host: Microarchitecture) -> set[str]:
    """The CPU's own flags when archspec can say, else its target's: the host target lists only
    the features that define it, so it would call present features missing."""
    detected_info = getattr(archspec.cpu.detect, "detected_info", None)  # archspec >= 0.2.5
    if detected_info is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return set(detected_info().features) | set(host.features)
            except Exception:  # detection failed before; host() already fell back
                pass
    return set(host.features)


# -- flags --------------------------------------------------------------------------------------


def target_flags(target: Microarchitecture, compiler: Compiler) -> str:
    """archspec's tuning flags for ``target`` with this compiler; a compiler too old for the target
    is a user error with a way out (an older target this compiler knows, or a newer compiler)."""
    try:
        return _optimization_flags(target, compiler.vendor, compiler.version)
    except UnsupportedMicroarchitecture as err:
        raise _too_old(target, compiler, str(err)) from None


def compiler_flags(target: Microarchitecture, compiler: Compiler, *, optimize: str = "-O2") -> str:
    """The full flag string one language's compiler gets: level, tuning, and the record switch."""
    parts = (optimize, target_flags(target, compiler), record_flag(compiler))
    return " ".join(p for p in parts if p)


def record_flag(compiler: Compiler) -> str:
    """The switch that stores the command line in ``.GCC.command.line``. Apple's clang has none for
    Mach-O, and LLVM-based Fortran front ends lag the C ones, so those get nothing."""
    if compiler.vendor == "gcc":
        return _RECORD_FLAG["gcc"]
    if compiler.vendor in _CLANG_FAMILY and compiler.lang != "fc":
        return _RECORD_FLAG["clang"]
    return ""


def _optimization_flags(target: Microarchitecture, vendor: str, version: str) -> str:
    """archspec's answer, tolerant of its version ranges. archspec compares versions as integer
    tuples, so an upper bound ``12.2`` excludes ``12.2.0`` (zen4 with gcc 12.2.0 would fail);
    retrying with ``major.minor`` gives the answer the range means."""
    if vendor not in target.family.compilers:
        return ""  # archspec knows nothing about this vendor (e.g. Cray's cce): no tuning flags
    dotted = _dotted(version)
    if not dotted:
        raise PmpmError(
            f"cannot compute flags for {vendor} version {version!r}: not a dotted version number",
            hint="name the compiler explicitly, or report its --version output to pmpm",
        )
    short = ".".join(dotted.split(".")[:2])
    with warnings.catch_warnings():
        # archspec warns that Intel's compilers may not optimise for AMD: advice, not a failure
        warnings.simplefilter("ignore")
        try:
            return target.optimization_flags(vendor, dotted)
        except UnsupportedMicroarchitecture:
            if short == dotted:
                raise
            try:
                return target.optimization_flags(vendor, short)
            except UnsupportedMicroarchitecture:
                pass
            raise  # the first error, which names the version as the compiler reported it


def _supports(target: Microarchitecture, vendor: str, version: str) -> bool:
    try:
        _optimization_flags(target, vendor, version)
    except UnsupportedMicroarchitecture:
        return False
    return True


def _too_old(target: Microarchitecture, compiler: Compiler, detail: str) -> PmpmError:
    """Name the way out: the newest generic level this compiler can build for (portable across
    vendors), the newest target of any kind it can, and the compiler the requested target needs."""
    lineage = sorted([target, *target.ancestors], key=lambda t: len(t.ancestors), reverse=True)
    usable = [t for t in lineage if _supports(t, compiler.vendor, compiler.version)]
    generic = next((t for t in usable if t.vendor == "generic"), None)
    named = f"{compiler.vendor} {compiler.version}"
    needed = _minimum_version(target, compiler.vendor)
    newer = f"{compiler.vendor} {needed} or newer" if needed else f"a compiler that knows {target.name}"
    if generic:
        hint = f"set the target to {generic.name} (the newest generic level {named} supports)"
        if usable[0] is not generic:
            hint += f" or {usable[0].name} (the newest of {target.name}'s ancestors it supports)"
        hint += f", or use {newer}"
    else:
        hint = f"use {newer}"
    return PmpmError(
        f"the {LANG_NAMES.get(compiler.lang, compiler.lang)} compiler {named} ({compiler.path}) "
        f"cannot build for target {target.name!r}: {detail}",
        hint=hint,
    )


def _minimum_version(target: Microarchitecture, vendor: str) -> str | None:
    entries = target.compilers.get(vendor) or []
    lows = [e["versions"].split(":")[0] for e in entries if e.get("versions")]
    lows = [low for low in lows if _dotted(low)]
    if not lows:
        return None
    return min(lows, key=lambda v: tuple(int(x) for x in _dotted(v).split(".")))


def _dotted(version: str) -> str:
    match = re.match(r"\d+(?:\.\d+)*", version.strip())
    return match.group(0) if match else ""


# -- compilers ----------------------------------------------------------------------------------


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
_IDENTITIES: dict[tuple[str, int], tuple[str, str, str] | None] = {}


def _identify(lang: str, found: str, env: Mapping[str, str]) -> Compiler | None:
    """Run the compiler (once per executable per process) to learn what it is; None if it does
    not run or is not recognisable, so the PATH search can move on."""
    resolved = _resolve(found, lang)
    try:
        mtime = os.stat(resolved).st_mtime_ns
    except OSError:
        return None
    key = (found, mtime)
    if key not in _IDENTITIES:
        _IDENTITIES[key] = _ask(found, env)
    identity = _IDENTITIES[key]
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
            if asked and _dotted(asked[0]):
                version = _dotted(asked[0])
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


# -- the whole host -----------------------------------------------------------------------------


def detect_host(
    target: str = "host",
    compilers: Mapping[str, str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    path: str | None = None,
    conda_bin: Path | None = None,
) -> HostProfile:
    """The profile one run builds with.

    ``target`` is ``host`` or any archspec name; one this machine cannot run is refused unless
    ``env`` (default: the process environment) sets ``PMPM_ALLOW_FOREIGN_TARGET=1``, which is
    how a login node builds for compute nodes of another generation or vendor. ``compilers``
    names compilers per language (``{"cc": "/opt/gcc-13/bin/gcc"}``); the rest come from
    ``conda_bin`` (conda's compiler packages, conda_install mode), then ``path`` (default: PATH).
    Flags are not computed here: ``pmpm host`` must still describe a machine whose compiler is
    too old for the target, and only builds need the flags.
    """
    env = os.environ if env is None else env
    uarch = resolve_target(target)
    host = archspec.cpu.host()
    _check_runs_here(uarch, host, env)
    return HostProfile(
        target=uarch.name,
        vendor=uarch.vendor,
        family=uarch.family.name,
        features=tuple(sorted(set(uarch.features) | set(ABI_FEATURES.get(uarch.family.name, ())))),
        detected=host.name,
        compilers=find_compilers(compilers, env=env, path=path, conda_bin=conda_bin),
    )
