"""The machine builds are tuned for: its CPU target, its compilers, and the exact flags between them.

Compiled packages are only worth building from source when they are tuned for the CPU they run on,
and only reproducible when the tuning is written down. So the target is always a concrete archspec
microarchitecture name (``icelake``, ``x86_64_v3``), never ``-march=native`` whose meaning depends
on the machine that happens to run the compiler; the flags are archspec's answer for that target
and each compiler's vendor and version; and every build records its command line in the objects
(``-frecord-gcc-switches``) so ``readelf -p .GCC.command.line`` can prove what was used.

Building on a login node for compute nodes of another kind is the one legitimate reason to target
a CPU this machine cannot run: set ``PMPM_ALLOW_FOREIGN_TARGET=1`` for that.

Finding and identifying the compilers is :mod:`pmpm.host.compilers`'s job (its names are
importable from here too); this machine's own target comes from :mod:`pmpm.host.target`.
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import archspec.cpu
from archspec.cpu import Microarchitecture, UnsupportedMicroarchitecture

from pmpm.builders import Flags
from pmpm.errors import PmpmError
from pmpm.host.compilers import (
    CONDA_SEARCH,
    CRAY_SEARCH,
    IDENTITIES,
    LANG_NAMES,
    LANGS,
    SEARCH,
    VERSION_TIMEOUT,
    Compiler,
    dotted_version,
    find_compilers,
    parse_version_text,
)
from pmpm.host.target import host_microarchitecture

__all__ = [
    "ABI_FEATURES",
    "ALLOW_FOREIGN",
    "CONDA_SEARCH",
    "CRAY_SEARCH",
    "FLAG_NAMES",
    "LANGS",
    "LANG_NAMES",
    "SEARCH",
    "VERSION_TIMEOUT",
    "Compiler",
    "HostProfile",
    "compiler_flags",
    "detect_host",
    "find_compilers",
    "known_targets",
    "parse_version_text",
    "record_flag",
    "resolve_target",
    "target_flags",
]

#: the compilers' identification cache, by the name the tests reach for
_IDENTITIES = IDENTITIES

FLAG_NAMES = {"cc": "cflags", "cxx": "cxxflags", "fc": "fflags"}

ALLOW_FOREIGN = "PMPM_ALLOW_FOREIGN_TARGET"
#: The switch that stores the command line in ``.GCC.command.line``, per compiler family; the
#: LLVM-based C/C++ drivers spell it differently from gcc (see :func:`record_flag`).
_RECORD_FLAG = {"gcc": "-frecord-gcc-switches", "clang": "-frecord-command-line"}
_CLANG_FAMILY = frozenset({"clang", "aocc", "oneapi"})


#: what every CPU of a family has by its ABI; archspec lists no features for the generic
#: ``x86_64`` and ``aarch64`` targets, and a recipe choosing SIMD kernels must still see them
ABI_FEATURES = {"x86_64": ("mmx", "sse", "sse2"), "aarch64": ("asimd", "fp")}


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
        return host_microarchitecture()
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
    host = host_microarchitecture()
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
    dotted = dotted_version(version)
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
    lows = [low for low in lows if dotted_version(low)]
    if not lows:
        return None
    return min(lows, key=lambda v: tuple(int(x) for x in dotted_version(v).split(".")))


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
    host = host_microarchitecture()
    _check_runs_here(uarch, host, env)
    return HostProfile(
        target=uarch.name,
        vendor=uarch.vendor,
        family=uarch.family.name,
        features=tuple(sorted(set(uarch.features) | set(ABI_FEATURES.get(uarch.family.name, ())))),
        detected=host.name,
        compilers=find_compilers(compilers, env=env, path=path, conda_bin=conda_bin),
    )
