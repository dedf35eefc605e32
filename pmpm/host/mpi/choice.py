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

This module makes that choice (:func:`decide`, once per run, as an :class:`MpiChoice`); running
wrappers is :mod:`pmpm.host.mpi.probe`'s job and finding and identifying MPIs :mod:`pmpm.host.mpi.discover`'s.
Their public names are importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pmpm import paths
from pmpm.errors import PmpmError
from pmpm.host.mpi.discover import (
    conda_wrapper,
    detect_mpi,
    find_mpis,
    identify,
    locate,
    path_wrappers,
    resolve_search_path,
)
from pmpm.host.mpi.probe import (
    CRAY_DRIVERS,
    CXX_NAMES,
    EXEC_NAMES,
    FC_NAMES,
    MPI,
    PROBE_TIMEOUT,
    PROBES,
    link_search,
    parse_version_text,
    split_command,
)

__all__ = [
    "CONDA_MPI",
    "CRAY_DRIVERS",
    "CXX_NAMES",
    "EXEC_NAMES",
    "FC_NAMES",
    "MPI",
    "PROBE_TIMEOUT",
    "WHERE",
    "MpiChoice",
    "check_conda_mpi",
    "choose_mpi",
    "conda_constraints",
    "decide",
    "detect_mpi",
    "external_before_solve",
    "find_mpis",
    "parse_version_text",
    "split_command",
]

#: the names the tests reach for (the probe cache, the link-flag reader)
_PROBES = PROBES
_link_search = link_search

WHERE = "_pmpm.mpi"

_SUGGEST_SYSTEM = (
    "install the system's MPI (Debian/Ubuntu: `apt-get install libopenmpi-dev openmpi-bin` or "
    "`libmpich-dev mpich`), load its module, or name the wrapper: "
    "`mpi: {external: {mpicc: /path/to/mpicc}}`"
)
_SUGGEST_CONDA = "add an MPI to the env file's dependencies (`- mpich` or `- openmpi` from conda-forge)"


# -- the run's decision -------------------------------------------------------------------------


@dataclass(frozen=True)
class MpiChoice:
    """The MPI one run builds with, decided once (:func:`decide`) and handed to the stages that
    need it: the conda stage (an external MPI constrains the solve) and the builds."""

    kind: Literal["none", "conda", "external"]
    mpi: MPI | None
    reason: str  # a sentence for the log: what was looked for and why this one
    #: True when the choice cannot change with what the conda solve installs (an explicit
    #: external MPI, ``none``, the host's MPI in system_install): it holds before and after it
    final: bool = True

    @property
    def external(self) -> MPI | None:
        """The chosen MPI when it is the system's: the conda stack must not bring a second one."""
        return self.mpi if self.kind == "external" else None


def _choice(found: tuple[MPI | None, str], *, final: bool) -> MpiChoice:
    mpi, reason = found
    kind: Literal["none", "conda", "external"] = "none"
    if mpi is not None:
        kind = "conda" if mpi.provider == "conda" else "external"
    return MpiChoice(kind, mpi, reason, final=final)


def _explicit_external(setting: Any) -> bool:
    """``external``, ``{external: ...}`` or ``{module: ...}``: the system's MPI, asked for by name."""
    named = isinstance(setting, Mapping) and bool(set(setting) & {"external", "module"})
    return setting == "external" or named


def decide(setting: Any, *, system: bool, base: Path | None, prefix: Path) -> MpiChoice:
    """The env file's ``_pmpm.mpi`` for the stacks of one run: the one place the MPI is chosen.

    conda_install mode: the setting against PREFIX (a conda MPI wins when automatic).
    system_install mode: the host's MPI wins when automatic, the conda stack's only when asked
    for (``mpi: conda``) or when the host has none.
    """
    final = setting == "none" or _explicit_external(setting)
    if not system:
        return _choice(choose_mpi(setting, prefix=prefix), final=final)
    if setting is None:
        mpi, reason = choose_mpi(None, prefix=None, path=paths.host_search_path([prefix, base]))
        if mpi is None and base is not None:
            return _choice(choose_mpi(None, prefix=base), final=False)
        return _choice((mpi, reason.replace("auto:", "auto (system_install):", 1)), final=True)
    return _choice(choose_mpi(setting, prefix=base or prefix), final=final)


def external_before_solve(setting: Any, *, system: bool, decide_now: Callable[[], MpiChoice]) -> MPI | None:
    """The external MPI the conda stack must not duplicate, or None.

    Only decided before the solve when it does not depend on it: an explicit external setting,
    or system_install's automatic choice (the host's MPI); in conda_install mode an automatic
    choice prefers a conda MPI, so the solve is not constrained. ``decide_now`` makes (or
    returns) the run's decision.
    """
    if not _explicit_external(setting) and not (system and setting is None):
        return None
    return decide_now().external


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
    search_path = resolve_search_path(path)
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
        wrapper = conda_wrapper(prefix)
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
        wrapper = locate("mpicc", outside)
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
    found = identify(wrapper, search_path=search_path, prefix=prefix)
    if isinstance(found, str):
        hint = _SUGGEST_CONDA if setting == "conda" else _SUGGEST_SYSTEM
        raise PmpmError(f"`mpi: {setting}` but {found}", where=WHERE, hint=hint)
    return found


def _auto(prefix: Path | None, search_path: str) -> tuple[MPI | None, str]:
    """No setting: a conda MPI wins (the conda packages were solved against it), then PATH's
    ``mpicc``, then a Cray driver. A broken wrapper in PREFIX/bin is an error rather than a
    reason to use the system's: mixing the two MPIs in one prefix fails at run time."""
    conda = conda_wrapper(prefix)
    outside = _without(search_path, prefix / "bin") if prefix is not None else search_path
    on_path = [w for w in path_wrappers(outside) if os.path.basename(w) in ("mpicc", *CRAY_DRIVERS)]
    external = None
    for wrapper in on_path:
        found = identify(wrapper, search_path=outside, prefix=prefix)
        if isinstance(found, MPI):
            external = found
            break
    if conda is not None:
        found = identify(conda, search_path=search_path, prefix=prefix)
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
    wrapper = locate(name, _without(search_path, prefix / "bin"))
    if wrapper is None:
        what = "does not exist or is not executable" if os.sep in name else "is not on PATH"
        raise PmpmError(
            f"the MPI C wrapper {name!r} {what}",
            where=f"{where}.mpicc",
            hint="give the full path of an installed MPI's mpicc (e.g. /usr/bin/mpicc.mpich)"
            + _offer(search_path, prefix),
        )
    found = identify(wrapper, search_path=search_path, prefix=prefix)
    if isinstance(found, str):
        raise PmpmError(
            found,
            where=f"{where}.mpicc",
            hint="name the mpicc of a working MPI" + _offer(search_path, prefix),
        )
    changes: dict[str, Any] = {}
    for key in ("mpicxx", "mpifort"):
        if wanted.get(key):
            hit = locate(wanted[key], search_path)
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
        (w for w in path_wrappers(outside) if os.path.basename(w) in ("mpicc", *CRAY_DRIVERS)), None
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
