"""The ``_pmpm: {slurm: ...}`` settings: what every build job asks ``sbatch`` for.

A sample block::

    slurm:
      partition: compute        # sbatch --partition
      account: proj123          # sbatch --account
      time: "1:00:00"           # sbatch --time, any of Slurm's formats (minutes, h:m:s, d-h, ...)
      cpus: 8                   # sbatch --cpus-per-task (also the build's parallelism)
      memory: 16G               # sbatch --mem (a number of MB, or with K/M/G/T)
      extra: [--qos=normal]     # more sbatch arguments, passed as they are
      targets:                  # which nodes provide each CPU target
        x86_64_v3: haswell      #   a --constraint expression over the nodes' Features=
        zen3: {constraint: milan, partition: amd}   # or a constraint and/or a partition

Values are checked here, before any job is submitted, so a typo costs no queue wait. Options
pmpm sets itself (the log, the job name, ``--parsable``) or that have their own key are refused
in ``extra``: a second ``--output`` would hide the log pmpm shows on failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pmpm.errors import PmpmError, combined

KEYS = ("partition", "account", "time", "cpus", "memory", "extra", "targets")

# minutes | minutes:seconds | hours:minutes:seconds | days-hours[:minutes[:seconds]]
_TIME = re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2}|UNLIMITED|INFINITE", re.IGNORECASE)
_MEMORY = re.compile(r"\d+[KMGT]?", re.IGNORECASE)
_NAME = re.compile(r"[A-Za-z0-9_.+-]+")  # partition and account names: no spaces, no commas

#: sbatch options pmpm sets itself -> why they cannot be given in ``extra``
_OWN = {
    "--output": "pmpm names each job's log itself",
    "-o": "pmpm names each job's log itself",
    "--error": "pmpm keeps stdout and stderr in one log",
    "-e": "pmpm keeps stdout and stderr in one log",
    "--job-name": "pmpm names each job after its target",
    "-J": "pmpm names each job after its target",
    "--parsable": "pmpm already asks for it",
    "--wrap": "pmpm submits its own job script",
    "--wait": "pmpm waits for all jobs itself, with live progress",
    "-W": "pmpm waits for all jobs itself, with live progress",
    "--array": "pmpm submits one job per target",
    "-a": "pmpm submits one job per target",
}
#: sbatch options that have their own key
_KEYED = {
    "--partition": "partition", "-p": "partition", "--account": "account", "-A": "account",
    "--time": "time", "-t": "time", "--cpus-per-task": "cpus", "-c": "cpus", "--mem": "memory",
    "--constraint": "targets", "-C": "targets",
}  # fmt: skip


@dataclass(frozen=True)
class Placement:
    """Where a target's build jobs go: a ``--constraint`` and/or a partition of their own."""

    constraint: str | None = None
    partition: str | None = None


@dataclass(frozen=True)
class SlurmSettings:
    """Checked ``_pmpm.slurm`` settings; ``None`` leaves the choice to the site's defaults."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None
    cpus: int | None = None
    memory: str | None = None
    extra: tuple[str, ...] = ()
    targets: Mapping[str, Placement] = field(default_factory=dict)

    @classmethod
    def from_mapping(
        cls, data: Any, where: str | None = None, lines: Mapping[str, str] | None = None
    ) -> SlurmSettings:
        """The settings from the env file's ``slurm:`` mapping; every problem at once, as a
        :class:`PmpmError` naming the key (``where`` is the file and line of the block,
        ``lines`` each key's own ``file:line``)."""
        at = lines or {}
        if not isinstance(data, Mapping):
            raise PmpmError(
                f"`slurm` must be a mapping of settings, not {type(data).__name__}",
                where=where,
                hint=f"keys: {', '.join(KEYS)}",
            )
        problems: list[PmpmError] = []

        def check(key: str, parse: Any) -> Any:
            if key not in data or data[key] is None:
                return None
            try:
                return parse(data[key])
            except PmpmError as exc:
                exc.message = f"slurm.{key}: {exc.message}"
                exc.where = exc.where or at.get(key, where)
                problems.append(exc)
                return None

        for key in data:
            if key not in KEYS:
                problems.append(
                    PmpmError(
                        f"unknown slurm key `{key}`",
                        where=at.get(key, where),
                        hint=f"keys: {', '.join(KEYS)}",
                    )
                )
        settings = cls(
            partition=check("partition", _name),
            account=check("account", _name),
            time=check("time", _time),
            cpus=check("cpus", _cpus),
            memory=check("memory", _memory),
            extra=check("extra", _extra) or (),
            targets=check("targets", _targets) or {},
        )
        if problems:
            raise combined(problems, "in the slurm settings")
        return settings

    def placement(self, target: str) -> Placement:
        """Where ``target``'s jobs go; a target missing from ``targets`` cannot be placed."""
        if target not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none"
            raise PmpmError(
                f"no Slurm nodes are named for target {target!r} (slurm.targets has: {known})",
                hint=f"add `{target}: FEATURE` under slurm.targets, with the Features= of the "
                "nodes whose CPU is that target (`sinfo -o '%P %f'` lists them)",
            )
        return self.targets[target]


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise PmpmError(f"expected text, got {type(value).__name__} {value!r}")
    text = str(value).strip()
    if not text:
        raise PmpmError("must not be empty")
    return text


def _name(value: Any) -> str:
    text = _text(value)
    if not _NAME.fullmatch(text):
        raise PmpmError(f"{text!r} is not a Slurm name (letters, digits, `_.+-`, no spaces or commas)")
    return text


def _time(value: Any) -> str:
    text = _text(value)
    if not _TIME.fullmatch(text):
        raise PmpmError(
            f"{text!r} is not a Slurm time limit",
            hint='use minutes (`90`), "hours:minutes:seconds" (`"1:30:00"`) or "days-hours" (`"2-12"`)',
        )
    return text


def _cpus(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PmpmError(f"must be a whole number of CPUs (1 or more), not {value!r}")
    return value


def _memory(value: Any) -> str:
    text = _text(value)
    if not _MEMORY.fullmatch(text):
        raise PmpmError(
            f"{text!r} is not a Slurm memory size", hint="use MB (`4000`) or a unit: `4G`, `500M`"
        )
    return text.upper()


def _extra(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list):
        raise PmpmError("must be a list of sbatch arguments, e.g. `[--qos=debug, --exclusive]`")
    args = tuple(_text(item) for item in value)
    for arg in args:
        option = arg.split("=", 1)[0]
        if option in _OWN:
            raise PmpmError(f"`{arg}` cannot be given: {_OWN[option]}")
        if option in _KEYED:
            raise PmpmError(f"`{arg}`: use the `slurm.{_KEYED[option]}` key instead")
    return args


def _targets(value: Any) -> dict[str, Placement]:
    if not isinstance(value, Mapping):
        raise PmpmError("must map each target to the node feature providing it, e.g. `{x86_64_v4: avx512}`")
    places: dict[str, Placement] = {}
    for target, place in value.items():
        name = _target(target)
        if isinstance(place, Mapping):
            unknown = sorted(set(place) - {"constraint", "partition"})
            if unknown or not place:
                raise PmpmError(
                    f"{name}: give `constraint` and/or `partition`"
                    + (f", not {', '.join(map(str, unknown))}" if unknown else "")
                )
            constraint = place.get("constraint")
            partition = place.get("partition")
            places[name] = Placement(
                _text(constraint) if constraint is not None else None,
                _name(partition) if partition is not None else None,
            )
        else:
            places[name] = Placement(constraint=_text(place))
    return places


def _target(value: Any) -> str:
    """archspec's name for a target (``x86-64-v3`` -> ``x86_64_v3``); ``host`` is refused: it
    would mean the submitting machine, not the compute nodes."""
    text = _text(value)
    if text.lower() in ("host", "native"):
        raise PmpmError(f"`{text}` names the submitting machine: name the compute nodes' target")
    from pmpm.host.detect import resolve_target  # archspec: only for env files with `slurm`

    return str(resolve_target(text).name)
