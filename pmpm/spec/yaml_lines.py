"""YAML parsed into plain values that remember their line.

Users fix mistakes in their editor, so every complaint about an environment file has to say
``file:line``. ``yaml.safe_load`` forgets where values came from; composing the node graph and
converting it here keeps the line of every key and list item, plus the scalar text exactly as
written (``3.10`` must stay ``"3.10"`` when used as a version, not become the float ``3.1``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pmpm.errors import PmpmError, located

try:  # the C loader is several times faster on large files; fall back when libyaml is absent
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


@dataclass(frozen=True)
class Node:
    """One YAML value with its 1-based line.

    ``value`` is a plain scalar, a ``list[Node]`` or a ``dict[str, Node]``. For a mapping value,
    ``line`` is the line of its key: that is where the user looks for ``variables:`` or ``pip:``
    even when the content starts on the next line. ``text`` is the scalar's source text (``None``
    for lists, mappings and YAML nulls).
    """

    value: Any
    line: int
    text: str | None = None

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.value, (dict, list))

    def plain(self) -> Any:
        """The value without line information, for free-form options passed on untouched."""
        if isinstance(self.value, dict):
            return {key: node.plain() for key, node in self.value.items()}
        if isinstance(self.value, list):
            return [node.plain() for node in self.value]
        return self.value


def describe(node: Node) -> str:
    """How a value looks to the user, for "must be X, not Y" messages."""
    if node.is_mapping:
        return "a mapping"
    if node.is_list:
        return "a list"
    if node.value is None:
        return "empty"
    if node.text == "":
        return "an empty string"
    if isinstance(node.value, bool):
        return f"the boolean `{node.text}`"
    return f"`{node.text}`"


def unknown_key(key: str, valid: tuple[str, ...] | list[str], what: str, path: Path, line: int) -> PmpmError:
    """An unknown key at its line, with the closest valid key."""
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean `{close[0]}`? " if close else ""
    hint += f"valid keys: {', '.join(valid)}"
    return PmpmError(f"unknown {what} key `{key}`", where=located(path, line), hint=hint)


def parse_yaml(text: str, path: Path) -> Node | None:
    """Parse one YAML document; ``None`` when it holds nothing but comments and blank lines.

    Syntax errors become :class:`PmpmError` at the line PyYAML marks, so no traceback reaches
    the user.
    """
    loader = None
    try:
        loader = _Loader(text)  # the pure-Python reader already rejects control characters here
        root = loader.get_single_node()
        if root is None:
            return None
        return _Converter(loader, path).convert(root, line=None, open_nodes=frozenset())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "could not be parsed"
        detail = f"invalid YAML: {problem}"
        if exc.context and exc.problem and exc.context_mark is not None:
            detail += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise PmpmError(
            detail,
            where=located(path, line),
            hint="check indentation (spaces, not tabs), quoting and the `- ` of list items",
        ) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        code = ord(exc.character) if isinstance(exc.character, str) else exc.character
        raise PmpmError(
            f"invalid YAML: unacceptable character #x{code:04x}: {exc.reason}",
            where=located(path, line),
            hint="remove the control character",
        ) from None
    except yaml.YAMLError as exc:
        raise PmpmError(f"invalid YAML: {exc}", where=str(path)) from None
    finally:
        if loader is not None:
            loader.dispose()


#: Values a file may expand to. Real env files hold hundreds; nested aliases ("billion laughs")
#: compose into a few dozen shared nodes but expand exponentially, which must be refused.
MAX_VALUES = 100_000


class _Converter:
    """Turns composed YAML nodes into :class:`Node` trees, counting every value it makes.

    Each alias becomes its own copy (so every use keeps its own line), which is what makes
    an alias bomb dangerous: the count stops it after :data:`MAX_VALUES` values.
    """

    def __init__(self, loader: Any, path: Path) -> None:
        self.loader = loader
        self.path = path
        self.left = MAX_VALUES
        self.open_lines: list[int] = []  # lines of the lists and mappings being converted

    def convert(self, node: yaml.Node, line: int | None, open_nodes: frozenset[int]) -> Node:
        path = self.path
        own_line = node.start_mark.line + 1
        at = line if line is not None else own_line
        self.left -= 1
        if self.left < 0:  # name the top-level entry: an alias's own line is its anchor's
            raise PmpmError(
                f"the YAML expands to more than {MAX_VALUES} values through its aliases",
                where=located(path, (self.open_lines[1:] or [at])[0]),
                hint="aliases (`*name`) that repeat other aliases multiply; write the values out",
            )
        if id(node) in open_nodes:  # `&a [*a]` would otherwise recurse forever
            raise PmpmError("an alias refers to the list or mapping it is part of", where=located(path, at))
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            open_nodes = open_nodes | {id(node)}
            self.open_lines.append(at)
            if isinstance(node, yaml.MappingNode):
                result = Node(self.mapping(node, at, open_nodes), at)
            else:
                result = Node([self.convert(item, None, open_nodes) for item in node.value], at)
            self.open_lines.pop()
            return result
        value = self.loader.construct_object(node, deep=True)
        text = None if value is None else node.value
        return Node(value, at, text)

    def mapping(self, node: yaml.MappingNode, at: int, open_nodes: frozenset[int]) -> dict[str, Node]:
        path = self.path
        first_line: dict[str, int] = {}
        for key_node, _ in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor` may repeat keys on purpose: the mapping's own keys win
            if not isinstance(key_node, yaml.ScalarNode):
                raise PmpmError("a mapping key must be a plain word", where=located(path, key_line))
            if key_node.value in first_line:
                raise PmpmError(
                    f"`{key_node.value}` appears twice in the same mapping "
                    f"(lines {first_line[key_node.value]} and {key_line})",
                    where=located(path, key_line),
                    hint="keep one of them; YAML would silently drop the first",
                )
            first_line[key_node.value] = key_line
        self.loader.flatten_mapping(node)  # resolves merge keys the way safe_load does
        result: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # a key brought in by a merge
                raise PmpmError("a mapping key must be a plain word", where=located(path, at))
            result[key_node.value] = self.convert(value_node, key_node.start_mark.line + 1, open_nodes)
        return result
