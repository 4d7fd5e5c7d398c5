"""YAML parsing that refuses alias bombs ("billion laughs") before anything walks the expanded document.

PyYAML's safe loader shares one object for every use of an anchor, so loading a 10-level alias bomb is fast; the
cost comes later, when validation or a deep copy walks the expansion (10^10 values, memory growing without
bound). Here the composed node graph is measured first: the number of values the document holds once every alias
is expanded. A document whose aliases expand past `MAX_VALUES` values (far beyond any config) or into a cycle is
refused in milliseconds, with a one-line error.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from qadistill.errors import QADistillError

# Values (scalars, lists, mappings) a document may expand to. A full experiment config has a few hundred.
MAX_VALUES = 100_000


class AliasBombError(ValueError):
    """A YAML document whose aliases expand to too many values, or refer to themselves."""


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def expanded_size(root: Node | None, limit: int = MAX_VALUES) -> int:
    """How many values `root` holds with every alias expanded; `AliasBombError` past `limit` or on a cycle.

    Each distinct node is measured once (iteratively, so deep nesting needs no recursion), which keeps the check
    linear in the document's size however large the expansion.
    """
    if root is None:
        return 0
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > limit:
                raise AliasBombError(f"its aliases expand to more than {limit:,} values")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise AliasBombError("an alias refers to a value that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, measuring each document's expanded size before constructing it."""

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        expanded_size(node)
        return node


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document with the safe loader, refusing alias bombs; errors name `source` in one line."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader subclass)
    except AliasBombError as exc:
        raise QADistillError(f"{source}: refused: {exc} (write the values out instead of nesting aliases)") from None
    except RecursionError:
        raise QADistillError(f"{source}: invalid YAML: nested too deeply") from None
