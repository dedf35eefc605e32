"""Which of an environment's compiled stacks to use on the CPU this process runs on.

An environment built for several CPU targets (``_pmpm: {targets: [...]}``) has one compiled stack
per target. Activation, ``pmpm run``, the modules and the Jupyter kernel use the best one this
CPU can run, in archspec's compatibility order: target T fits the detected host microarchitecture
H when T is H or one of H's ancestors (an ``icelake`` runs ``x86_64_v4``, ``skylake``,
``x86_64_v3``..., not ``zen3``); among the fitting ones the most specific wins (the one with the
most ancestors: ``icelake`` before ``x86_64_v4`` before ``x86_64_v3``; a tie keeps the installed
order).

``PMPM_TARGET=T`` forces T. It must be installed. When this CPU cannot run it, the choice is
refused (its binaries would die of illegal instructions), unless ``PMPM_ALLOW_FOREIGN_TARGET=1``
says the user knows better (archspec may not know a brand-new CPU, or a VM may hide flags): the
same variable that lets pmpm build for a foreign target.

archspec costs ~40 ms to import, and activation is latency-bound, so it is imported only when
there is a choice to make: one installed target and no ``PMPM_TARGET`` is chosen without it (as
an environment with one ``target:`` is used today, unchecked).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pmpm.errors import PmpmError
from pmpm.host.target import host_microarchitecture

if TYPE_CHECKING:
    from archspec.cpu import Microarchitecture

    from pmpm.env.layout import Layout

FORCE_VAR = "PMPM_TARGET"
ALLOW_FOREIGN = "PMPM_ALLOW_FOREIGN_TARGET"  # the same as pmpm.host.detect.ALLOW_FOREIGN


@dataclass(frozen=True)
class Choice:
    """The chosen target, the CPU it was chosen for (None: not detected) and why."""

    target: str
    cpu: str | None
    reason: str  # "best", "only", "forced" or "forced-foreign"

    def describe(self) -> str:
        """One line for the user: which target and why."""
        on = f" on this {self.cpu} CPU" if self.cpu else ""
        return {
            "best": f"using target {self.target}: the best installed one{on}",
            "only": f"using target {self.target}: the only one installed",
            "forced": f"using target {self.target}: {FORCE_VAR} asks for it{on}",
            "forced-foreign": f"using target {self.target}: {FORCE_VAR} asks for it and "
            f"{ALLOW_FOREIGN}=1 allows it although this {self.cpu} CPU cannot run it",
        }[self.reason]


def _lookup(name: str) -> Microarchitecture | None:
    import archspec.cpu

    return archspec.cpu.TARGETS.get(name)


def fits(target: str, cpu: Microarchitecture) -> bool:
    """archspec's rule: ``cpu`` runs ``target`` when it is it or descends from it."""
    wanted = _lookup(target)
    return wanted is not None and (wanted == cpu or wanted in cpu.ancestors)


def preference(installed: Sequence[str]) -> list[str]:
    """``installed`` most specific first (most ancestors; ties keep the given order): the order
    in which a CPU tries them. Names archspec does not know go last."""

    def depth(name: str) -> int:
        known = _lookup(name)
        return len(known.ancestors) if known is not None else -1

    return sorted(installed, key=lambda name: -depth(name))


def detect_cpu() -> Microarchitecture:
    """This machine's CPU, as archspec names it: the one seam tests replace to make the detected
    CPU a given one (``archspec.cpu.TARGETS["zen3"]``)."""
    return host_microarchitecture()


def choose(
    installed: Sequence[str], cpu: Microarchitecture | None = None, env: Mapping[str, str] | None = None
) -> Choice:
    """The target to use among ``installed`` on ``cpu`` (default: this machine's, detected by
    archspec), honouring ``PMPM_TARGET`` from ``env`` (default: the process environment)."""
    environ = os.environ if env is None else env
    if not installed:
        raise PmpmError("the environment has no compiled stack to choose from", hint="rebuild it")
    forced = environ.get(FORCE_VAR, "").strip()
    names = ", ".join(installed)
    if forced and forced not in installed:
        raise PmpmError(
            f"{FORCE_VAR}={forced}, but the environment has no stack for {forced} (it has: {names})",
            hint=f"set {FORCE_VAR} to one of {names}, or unset it to let pmpm choose; or add "
            f"{forced} to the env file's _pmpm.targets and run pmpm again",
        )
    if not forced and len(installed) == 1:
        return Choice(installed[0], None, "only")
    host = cpu if cpu is not None else detect_cpu()
    if forced:
        if fits(forced, host):
            return Choice(forced, host.name, "forced")
        if environ.get(ALLOW_FOREIGN) == "1":
            return Choice(forced, host.name, "forced-foreign")
        raise PmpmError(
            f"{FORCE_VAR}={forced}, but this CPU ({host.name}) cannot run {forced} binaries",
            hint=f"choose a target this CPU runs ({_runnable(host)}), or unset {FORCE_VAR}; set "
            f"{ALLOW_FOREIGN}=1 as well if you know this CPU runs {forced} (a CPU archspec does "
            "not know, or a VM that hides CPU flags)",
        )
    for name in preference(installed):
        if fits(name, host):
            return Choice(name, host.name, "best")
    raise PmpmError(
        f"none of the environment's targets ({names}) runs on this CPU ({host.name})",
        hint=f"build a stack for this CPU: add {host.name} (or a generic level it runs, such as "
        f"{_generic(host)}) to _pmpm.targets and run pmpm again; or force one with "
        f"{FORCE_VAR}=T and {ALLOW_FOREIGN}=1 if you know this CPU runs it",
    )


def _runnable(host: Microarchitecture) -> str:
    return ", ".join([host.name, *(a.name for a in host.ancestors)])


def _generic(host: Microarchitecture) -> str:
    generic = [a.name for a in [host, *host.ancestors] if a.vendor == "generic"]
    return max(generic, key=lambda n: len(_lookup(n).ancestors), default=host.family.name)  # type: ignore[union-attr]


def select(
    layout: Layout, env: Mapping[str, str] | None = None, cpu: Microarchitecture | None = None
) -> tuple[Layout, Choice | None]:
    """The one-stack layout to activate for ``layout`` on this CPU, and the choice made (None:
    the layout has one target, nothing to choose)."""
    targets = tuple(getattr(layout, "targets", ()))
    if not targets:
        return layout, None
    choice = choose(targets, cpu, env)
    return layout.for_target(choice.target), choice
