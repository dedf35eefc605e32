"""Conda match specs read once, with conda's lenient rules, for every consumer.

conda and mamba accept forms the strict match-spec grammar refuses: ``fftw=*=mpi_*``,
``numpy=1.*``, ``libfoo 1.1.0`` (exact, as in conda), ``libfoo=1.1.0=h0_0`` (what ``conda env
export`` writes). py-rattler's lenient parser reads them with conda's meaning and prints a
canonical form (``fftw * mpi_*``, ``numpy 1.*``, ``libfoo ==1.1.0``) that every strict reader
takes, so the env file, the solver, the installer's requested specs and the lock all read one
parse; nothing hands the text as written to a strict parser.

conda's regex and inner-``*`` glob versions (``numpy ^1\\.7.*$``, ``numpy *.7.*``), which
py-rattler cannot hold, are read by :mod:`pmpm.spec.versionpattern` and made explicit
(:func:`expand`) against the channels' records just before the solve.

py-rattler (and :mod:`pmpm.spec.versionpattern`, which subclasses its ``MatchSpec``) is imported
in the functions that use it, as in :mod:`pmpm.conda.engine`, which imports this module at its
top: importing either does not import py-rattler.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pmpm.errors import PmpmError

if TYPE_CHECKING:
    from rattler import MatchSpec, PackageRecord

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
    """The one reading of a spec: lenient, as conda and mamba read env files and command lines.

    A version py-rattler cannot hold (a regex ``^1\\.7.*$``, a glob ``*.7.*``) gives a
    :class:`pmpm.spec.versionpattern.PatternSpec`, which :func:`expand` turns into the explicit
    versions the channels have before the solve.
    """
    from rattler import MatchSpec  # lazy: py-rattler is slow to import
    from rattler.exceptions import InvalidMatchSpecError

    from pmpm.spec import versionpattern  # it subclasses py-rattler's MatchSpec: lazy as well

    written = normalise(text)
    try:
        pattern = versionpattern.split(written)
        if pattern is not None:
            match: MatchSpec = versionpattern.PatternSpec(*pattern)
        else:
            match = MatchSpec(written, strict=False)
    except InvalidMatchSpecError as exc:
        raise InvalidSpec(text, str(exc).splitlines()[0]) from None
    except versionpattern.BadPattern as exc:
        raise InvalidSpec(text, str(exc)) from None
    if match.build is not None and _NOT_A_BUILD.search(str(match.build)):
        # py-rattler reads what it cannot place as a build string: refuse rather than install
        # something the user did not ask for
        raise InvalidSpec(
            text,
            f"the version part cannot be read (it would become the build string `{match.build}`); "
            "write the version as one word after the name, e.g. `numpy *.7.*` or `numpy >=1.7,<1.8`",
        )
    return match


def pattern_names(specs: list[MatchSpec]) -> list[str]:
    """The package names whose versions :func:`expand` needs (none for ordinary specs)."""
    from pmpm.spec.versionpattern import PatternSpec

    return sorted({s.head for s in specs if isinstance(s, PatternSpec)})


def expand(specs: list[MatchSpec], known: Mapping[str, Sequence[PackageRecord]]) -> list[MatchSpec]:
    """``specs`` with each regex/glob version made explicit, for a solver that cannot read them.

    ``known`` maps the :func:`pattern_names` to the channels' records of them. A pattern no
    record matches is an error naming the spec.
    """
    from pmpm.spec.versionpattern import PatternSpec

    result = []
    for spec in specs:
        if isinstance(spec, PatternSpec):
            explicit = spec.expand(known.get(spec.head, []))
            if explicit is None:
                versions = dict.fromkeys(str(r.version) for r in known.get(spec.head, []))
                found = ", ".join(list(versions)[:10]) or "none"
                raise NoVersionMatches(spec, found)
            spec = explicit
        result.append(spec)
    return result


def for_installer(text: str, records: Sequence[PackageRecord]) -> MatchSpec:
    """A requested spec as py-rattler's installer writes it into a record's ``requested_specs``.

    py-rattler cannot hold a regex/glob version, so such a spec is given as the versions of
    ``records`` (the packages being installed) it selects: what was solved for it, which conda,
    mamba and pixi all read. conda's own requested specs (``conda-meta/history``) and the lock
    keep the text as written, which conda reads with its full meaning.
    """
    from pmpm.spec.versionpattern import PatternSpec

    match = parse(text)
    if isinstance(match, PatternSpec):
        return match.expand(r for r in records if r.name.normalized == match.head) or match
    return match


class NoVersionMatches(PmpmError):
    """No version in the channels matches a regex/glob version spec."""

    def __init__(self, spec: MatchSpec, found: str) -> None:
        super().__init__(
            f"no version of {spec.name.normalized} in the channels matches `{spec}` "
            f"(versions there: {found})",
            hint="change the version pattern (conda regexes match the whole version string), "
            "or add a channel that has a matching version",
        )
        self.spec = spec


def canonical(match: MatchSpec) -> str:
    """The spec in canonical form, its channel left out (callers put the resolved URL there).

    A spec with a channel prints as ``conda-forge::numpy 1.26.*``, or with brackets for URL
    channels; its bracket form without the ``channel`` key keeps everything else (subdir,
    build number, md5...).
    """
    from pmpm.spec.versionpattern import PatternSpec

    if isinstance(match, PatternSpec):
        return match.canonical()
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
