"""YAML read with line numbers kept, so every error can point at ``file:line``.

``load_yaml`` composes the node tree with PyYAML (safe tags only) and turns it
into ``LineDict``/``LineList`` values that remember the line of every key and
item. Scalars are plain Python values, resolved by PyYAML's safe rules.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode


class LineDict(dict[str, Any]):
    """A mapping that knows its own line and the line of each key (1-based)."""

    line: int = 1
    key_lines: dict[str, int] = {}  # noqa: RUF012 - replaced per instance, never mutated

    def line_of(self, key: str) -> int:
        """The line of ``key``, or of the mapping itself when the key is absent."""
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A sequence that knows its own line and the line of each item (1-based)."""

    line: int = 1
    item_lines: list[int] = []  # noqa: RUF012 - replaced per instance, never mutated


class YamlError(Exception):
    """The file is not valid YAML, or holds something a dialog file cannot; carries the line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class DialogLoader(yaml.SafeLoader):
    """The safe loader with YAML 1.2 booleans: only true/false, so ``on:``, ``yes`` and ``no`` stay text."""


DialogLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
DialogLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _convert(node: Node, constructor: SafeConstructor) -> Any:
    if isinstance(node, MappingNode):
        result = LineDict()
        result.line = node.start_mark.line + 1
        result.key_lines = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, constructor)
            line = key_node.start_mark.line + 1
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError(line, "YAML merge keys (<<) are not supported here")
            if not isinstance(key, str):
                # ``yes:``/``no:`` and numbers become booleans and ints in YAML 1.1.
                raise YamlError(line, f"key {key!r} must be text; put it in quotes")
            if key in result:
                raise YamlError(
                    line, f"duplicate key {key!r} (first on line {result.key_lines[key]})"
                )
            result[key] = _convert(value_node, constructor)
            result.key_lines[key] = line
        return result
    if isinstance(node, SequenceNode):
        items = LineList()
        items.line = node.start_mark.line + 1
        items.item_lines = []
        for item in node.value:
            items.append(_convert(item, constructor))
            items.item_lines.append(item.start_mark.line + 1)
        return items
    if isinstance(node, ScalarNode):
        try:
            return constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise YamlError(node.start_mark.line + 1, f"cannot read value: {exc}") from exc
    raise YamlError(node.start_mark.line + 1, "unsupported YAML node")


def load_yaml(text: str) -> Any:
    """Parse one YAML document into line-aware values; raise YamlError with a line."""
    try:
        node = yaml.compose(text, Loader=DialogLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise YamlError(line, f"not valid YAML: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(1, f"not valid YAML: {exc}") from exc
    if node is None:
        return None
    return _convert(node, SafeConstructor())
