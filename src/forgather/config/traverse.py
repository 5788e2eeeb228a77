"""The one way to walk a node graph.

Build, code generation, ``to_yaml``, ``check``, ``graph`` output and ``--set``
all need the same thing: every node with its path from a target
(``trainer.args.optimizer``), visited in a deterministic order, each node's
children visited once even when the node is shared or part of a cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .nodes import Node


@dataclass(frozen=True)
class Visit:
    """One step of a walk: ``value`` reached by ``path``; ``first`` on its first visit."""

    path: tuple[str, ...]
    value: Any
    parent: Any
    first: bool

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def walk(graph: dict[str, Any], targets: list[str] | None = None) -> Iterator[Visit]:
    """Depth-first, pre-order walk of ``graph`` from ``targets`` (default: all, in order).

    A node seen before is yielded again (``first=False``) but not descended
    into, so shared nodes and cycles are walked once.
    """
    seen: set[int] = set()
    names = list(graph) if targets is None else targets

    def visit(path, value, parent):
        first = not (isinstance(value, Node) and id(value) in seen)
        yield Visit(path, value, parent, first)
        if isinstance(value, Node) and first:
            seen.add(id(value))
            for key, child in value.children():
                yield from visit((*path, key), child, value)

    for name in names:
        yield from visit((name,), graph[name], None)


def reference_counts(graph: dict[str, Any], targets: list[str] | None = None) -> dict[int, int]:
    """How many places refer to each node (by id)."""
    counts: dict[int, int] = {}
    for v in walk(graph, targets):
        if isinstance(v.value, Node):
            counts[id(v.value)] = counts.get(id(v.value), 0) + 1
    return counts


def first_paths(graph: dict[str, Any]) -> dict[int, str]:
    """The dotted path by which each node is first reached."""
    return {id(v.value): v.dotted for v in walk(graph) if isinstance(v.value, Node) and v.first}
