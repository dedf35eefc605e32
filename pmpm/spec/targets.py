"""CPU target names as an env file (``_pmpm.targets``) or ``--targets`` gives them: archspec's
names, gcc's spelling, ``host`` for this machine's. archspec is imported only when a target is
read: an env file without targets does not need it."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING

from pmpm.errors import PmpmError
from pmpm.host.target import host_target_name

if TYPE_CHECKING:
    from pmpm.spec.model import PmpmSection


def canonical_target(name: str) -> str | None:
    """archspec's name for a target as a user writes it (gcc's dashes, any case; ``host`` and
    ``native``: this machine's), or None when archspec knows no such target."""
    wanted = name.strip().lower()
    if wanted in ("host", "native"):
        return host_target_name()
    import archspec.cpu  # not at the top: reading an env file without targets does not need it

    for candidate in (wanted, wanted.replace("-", "_")):
        if candidate in archspec.cpu.TARGETS:
            return candidate
    return None


def targets_for(section: PmpmSection, override: str | None) -> tuple[str, ...]:
    """The targets a run builds for: ``--targets a,b`` (``override``) over the env file's
    ``targets``; () when neither is given (the one ``target``). Each resolved and checked as the
    env file's are; a bad ``--targets`` entry is an error naming the option."""
    if override is None:
        return tuple(section.targets)

    names: list[str] = []
    for written in (part.strip() for part in override.split(",")):
        name = canonical_target(written) if written else None
        if name is None:
            raise PmpmError(
                f"--targets: unknown target `{written}`" + close_targets(written),
                hint="`pmpm host --targets` lists every known target; separate several with commas",
            )
        if name in names:
            raise PmpmError(f"--targets: `{written}` ({name}) is given twice", hint="list each target once")
        names.append(name)
    return tuple(names)


def close_targets(name: str) -> str:
    import archspec.cpu

    close = difflib.get_close_matches(name.lower().replace("-", "_"), list(archspec.cpu.TARGETS), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""
