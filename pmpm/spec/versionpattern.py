"""conda's version forms py-rattler cannot hold: regexes (``^1\\.7.*$``) and globs with a ``*``
that is not at the end (``*.7.*``, ``1.*.3``).

conda (``conda/models/version.py``, ``VersionSpec``) reads a version ``^...$`` as a regex and
turns a glob with an inner ``*`` into one (``.`` and ``+`` escaped, ``*`` as ``.*``), matched
against the version *string*; such leaves may be joined with the other forms by ``,`` (and,
binding tighter), ``|`` (or) and parentheses. py-rattler refuses regexes and reads ``*.7.*`` as
a build string, so such a spec is expanded before the solve into the exact versions the
channels have that match (``==1.7.0|==1.7.1``), the other leaves evaluated by py-rattler.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

# this module is imported only where py-rattler already is
from rattler import MatchSpec, PackageRecord, Version, VersionSpec
from rattler.exceptions import InvalidVersionSpecError

# conda's VSPEC_TOKENS: a regex is one token (it may hold `|`, `,` and parentheses)
_TOKENS = re.compile(r"\s*\^[^$]*[$]|\s*[()|,]|[^()|,]+")
_OPERATOR_START = tuple("<>=!~")

Matcher = Callable[[str], bool]


class BadPattern(ValueError):
    """The version expression is not one conda reads."""


def is_conda_only(version: str) -> bool:
    """Whether ``version`` has a regex or inner-``*`` glob leaf (which py-rattler cannot read)."""
    return any(_leaf_regex(token.strip()) is not None for token in _TOKENS.findall(version))


def _leaf_regex(leaf: str) -> str | None:
    """conda's regex for one leaf, or None when the leaf is an ordinary version spec."""
    if not leaf or leaf in "()|,":
        return None
    if leaf.startswith("^") or leaf.endswith("$"):
        if not (leaf.startswith("^") and leaf.endswith("$")):
            raise BadPattern(f"a regex version must start with `^` and end with `$`: `{leaf}`")
        return leaf
    if leaf.startswith(_OPERATOR_START) or leaf == "*" or "*" not in leaf.rstrip("*"):
        return None
    glob = leaf.replace(".", r"\.").replace("+", r"\+").replace("*", ".*")
    return rf"^(?:{glob})$"


def matcher(version: str) -> Matcher:
    """A predicate on a record's version string with conda's meaning of ``version``.

    Raises :class:`BadPattern` when conda would refuse it (unbalanced parentheses, a bad regex).
    """
    tokens = [t.strip() for t in _TOKENS.findall(version) if t.strip()]
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def any_of() -> Matcher:  # `|` binds loosest
        parts = [all_of()]
        while peek() == "|":
            take()
            parts.append(all_of())
        return parts[0] if len(parts) == 1 else lambda v: any(p(v) for p in parts)

    def all_of() -> Matcher:
        parts = [atom()]
        while peek() == ",":
            take()
            parts.append(atom())
        return parts[0] if len(parts) == 1 else lambda v: all(p(v) for p in parts)

    def atom() -> Matcher:
        token = peek()
        if token is None or token in "|,)":
            raise BadPattern(f"a version is missing in `{version}`")
        take()
        if token == "(":
            inner = any_of()
            if peek() != ")":
                raise BadPattern(f"unbalanced parentheses in `{version}`")
            take()
            return inner
        return _leaf(token)

    result = any_of()
    if peek() is not None:
        raise BadPattern(f"unexpected `{peek()}` in `{version}`")
    return result


def _leaf(leaf: str) -> Matcher:
    regex = _leaf_regex(leaf)
    if regex is not None:
        try:
            compiled = re.compile(regex)
        except re.error as exc:
            raise BadPattern(f"invalid regex `{leaf}`: {exc}") from None
        return lambda v: compiled.fullmatch(v) is not None  # as conda: `^...$` against the string
    try:
        spec = VersionSpec(leaf if leaf.startswith(_OPERATOR_START) or "*" in leaf else f"=={leaf}")
    except InvalidVersionSpecError as exc:
        raise BadPattern(f"invalid version `{leaf}`: {str(exc).splitlines()[0]}") from None
    return lambda v: spec.matches(Version(v))


def explicit(version: str, candidates: Iterable[str]) -> str | None:
    """The versions among ``candidates`` that ``version`` selects, as ``==a|==b`` (None if none)."""
    keep = matcher(version)
    chosen = sorted({v for v in candidates if keep(v)}, key=Version)
    return "|".join(f"=={v}" for v in chosen) or None


def split(written: str) -> tuple[str, str, str, str] | None:
    """``(channel::, name, version, rest)`` of a normalised spec whose version is conda-only.

    Only the positional form ``[channel::]name VERSION [BUILD]`` is read here: a regex version
    cannot be written in the other forms without being taken apart by the bracket syntax.
    """
    parts = written.split(" ", 2)
    if len(parts) < 2 or "[" in parts[0] or not is_conda_only(parts[1]):
        return None
    channel, _, name = parts[0].rpartition("::")
    rest = f" {parts[2]}" if len(parts) == 3 else ""
    return (f"{channel}::" if channel else ""), name, parts[1], rest


class PatternSpec(MatchSpec):
    """A spec whose version py-rattler cannot hold; as a MatchSpec it is the spec with version
    ``*`` (name, channel and build), never to be solved before :meth:`expand`."""

    def __init__(self, channel: str, name: str, version: str, rest: str) -> None:
        super().__init__(f"{channel}{name} *{rest}", strict=False)
        self.prefix, self.head, self.pattern, self.rest = channel, name, version, rest
        matcher(version)  # refuse now what conda would refuse

    def canonical(self) -> str:
        """The spec as written (normalised), without its channel."""
        return f"{self.head} {self.pattern}{self.rest}"

    def __str__(self) -> str:
        return f"{self.prefix}{self.canonical()}"

    def __repr__(self) -> str:
        return f"PatternSpec({str(self)!r})"

    def expand(self, records: Iterable[PackageRecord]) -> MatchSpec | None:
        """The spec with the versions of ``records`` it selects (version pattern, name, build,
        channel...), or None when there are none."""
        chosen = explicit(self.pattern, (str(r.version) for r in records if self.matches(r)))
        if chosen is None:
            return None
        return MatchSpec(f"{self.prefix}{self.head} {chosen}{self.rest}", strict=False)
