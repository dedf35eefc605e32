"""Conda match specs read once, with conda's lenient rules, for every consumer.

conda and mamba accept forms the strict match-spec grammar refuses: ``fftw=*=mpi_*``,
``numpy=1.*``, ``libfoo 1.1.0`` (exact, as in conda), ``libfoo=1.1.0=h0_0`` (what ``conda env
export`` writes). py-rattler's lenient parser reads them with conda's meaning and prints a
canonical form (``fftw * mpi_*``, ``numpy 1.*``, ``libfoo ==1.1.0``) that every strict reader
takes, so the env file, the solver, the installer's requested specs and the lock all read one
parse; nothing hands the text as written to a strict parser.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pmpm.errors import PmpmError

if TYPE_CHECKING:
    from rattler import MatchSpec

_CHANNEL_KEY = re.compile(r'channel="[^"]*",?')
_NOT_A_BUILD = re.compile(r"^\.|[<>=!~,|]")  # a build string never holds these


class InvalidSpec(ValueError):
    """The text is not a match spec; ``reason`` is the parser's first line."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"invalid package spec `{text}`: {reason}")
        self.text = text
        self.reason = reason


def normalise(text: str) -> str:
    """One canonical spacing, so `scipy   >=  1.5,  <2` prints and compares as `scipy >=1.5,<2`."""
    spec = " ".join(text.split())
    spec = re.sub(r"\s*([,|])\s*", r"\1", spec)
    return re.sub(r"([<>=!~])\s+(?=[0-9A-Za-z*])", r"\1", spec)


def parse(text: str) -> MatchSpec:
    """The one reading of a spec: lenient, as conda and mamba read env files and command lines."""
    from rattler import MatchSpec  # lazy: py-rattler is slow to import
    from rattler.exceptions import InvalidMatchSpecError

    try:
        match = MatchSpec(normalise(text), strict=False)
    except InvalidMatchSpecError as exc:
        raise InvalidSpec(text, str(exc).splitlines()[0]) from None
    if match.build is not None and _NOT_A_BUILD.search(str(match.build)):
        # conda's regex-like version globs (`*.7.*`) are read by py-rattler as version `*` and
        # a build string: refuse rather than install something the user did not ask for
        raise InvalidSpec(
            text,
            f"the version part cannot be read (it would become the build string `{match.build}`); "
            "a version glob starting with `*` is not supported: write a range such as `>=1.7,<1.8`",
        )
    return match


def canonical(match: MatchSpec) -> str:
    """The spec in canonical form, its channel left out (callers put the resolved URL there).

    A spec with a channel prints as ``conda-forge::numpy 1.26.*``, or with brackets for URL
    channels; its bracket form without the ``channel`` key keeps everything else (subdir,
    build number, md5...).
    """
    if match.channel is None:
        return str(match)
    bracket = _CHANNEL_KEY.sub("", match.to_canonical_string()).replace(",]", "]").replace("[]", "")
    return str(parse(bracket))


def for_solver(specs: list[str]) -> list[MatchSpec]:
    """Specs from anywhere (env file, recipes' ``requires: conda:``, MPI constraints, a lock) as
    the solver and installer get them. The env file's were checked with their lines already, so
    an invalid one here comes from a recipe: the error names the spec and says so."""
    result = []
    for text in specs:
        try:
            result.append(parse(text))
        except InvalidSpec as exc:
            raise PmpmError(
                str(exc),
                hint="a recipe's `requires: conda:` entries are conda match specs too: fix the recipe "
                "that lists it (`pmpm recipes show NAME`), e.g. `numpy >=1.26` or `fftw=*=mpi_*`",
            ) from None
    return result
