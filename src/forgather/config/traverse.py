"""The one way to walk a node graph, and to follow a dotted path into it.

Every pass names a place in the graph the same way: a path of steps from a
target (``trainer.args.optimizer``), each step a key of
:meth:`~forgather.config.nodes.Node.children`. :func:`walk` visits every
place in a deterministic order (``check``, ``graph``, code generation's
reference counts); :func:`lookup` and :func:`assign` follow one dotted path
(``--set``); build and code generation recurse with the same steps, so an
error note names the path that ``graph`` prints and ``--set`` accepts.

Decision a reader may question: :func:`walk` is pre-order and visits each
shared node's children once. That is right for looking at a graph, and wrong
for evaluating one: build needs children before their parent, a factory or
container anew at each reference, and a partial's arguments only when it is
called. So build and codegen recurse themselves, one step at a time through
the nodes' uniform :meth:`~forgather.config.nodes.Node.children` and
:meth:`~forgather.config.nodes.Container.assemble`, rather than consume
:func:`walk`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .nodes import DictNode, Node


@dataclass(frozen=True)
class Visit:
    """One step of a walk: ``value`` reached by ``path``; ``first`` on its first visit."""

    path: tuple[str, ...]
    value: Any
    parent: Any
    first: bool

    @property
    def dotted(self) -> str:
        """The path as ``--set`` takes it: steps joined with ``.``."""
        return ".".join(self.path)


def walk(graph: dict[str, Any], targets: list[str] | None = None) -> Iterator[Visit]:
    """Depth-first, pre-order walk of ``graph`` from ``targets`` (default: all, in order).

    A node seen before is yielded again (``first=False``) but not descended
    into, so shared nodes and cycles are walked once.

    Args:
        graph: target name -> value.
        targets: the targets to start from, in order.

    Yields:
        One :class:`Visit` per place a value is referenced from.
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


class PathError(LookupError):
    """A dotted path that names no place in the graph.

    Attributes:
        reason: what is wrong, e.g. ``no such key or index 'lr'``.
        path: the path up to the step that failed.
    """

    def __init__(self, reason: str, path: str):
        super().__init__(f"{path}: {reason}")
        self.reason = reason
        self.path = path


def _step(value: Any, key: str, path: str) -> Any:
    if not isinstance(value, Node):
        raise PathError(f"{type(value).__name__} value has no children", path)
    try:
        return value.child(key)
    except KeyError:
        raise PathError(f"no such key or index {key!r}", path) from None
    except LookupError as e:
        raise PathError(str(e), path) from None


def _parent(graph: dict[str, Any], steps: list[str]) -> Any:
    if steps[0] not in graph:
        raise PathError(f"no target {steps[0]!r}", ".".join(steps))
    value = graph[steps[0]]
    for i in range(1, len(steps) - 1):
        value = _step(value, steps[i], ".".join(steps[: i + 1]))
    return value


def _places(holder: Any, steps: list[str], i: int) -> Iterator[tuple[Any, str]]:
    """Each (node, key) that ``steps[i:]`` can name below ``holder``, one step per key first.

    A mapping key may contain dots (``rules: {norm\\.weight$: ...}``), so a
    key may also span several steps; that reading is tried only after the
    plain one fails, so a path that named a place before still names it.
    """
    for j in range(i + 1, len(steps) + 1):
        key = ".".join(steps[i:j])
        try:
            child = holder.child(key)
        except LookupError:
            continue
        if j == len(steps):
            yield holder, key
        elif isinstance(child, Node):
            yield from _places(child, steps, j)


def _splits(holder: Any, steps: list[str], i: int) -> Iterator[tuple[str, ...]]:
    """Each way to read ``steps[i:]`` as keys below ``holder``, as :func:`_places` tries them."""
    for j in range(i + 1, len(steps) + 1):
        key = ".".join(steps[i:j])
        try:
            child = holder.child(key)
        except LookupError:
            continue
        if j == len(steps):
            yield (key,)
        elif isinstance(child, Node):
            yield from ((key, *rest) for rest in _splits(child, steps, j))


def path_keys(graph: dict[str, Any], path: str) -> tuple[str, ...]:
    """The keys that dotted ``path`` steps through: ``a.rules.norm.weight`` ->
    ``("a", "rules", "norm.weight")`` when that key holds a dot.

    Raises:
        PathError: a step names nothing.
    """
    found = next(_splits(DictNode(items=graph), path.split("."), 0), None)
    if found is None:
        lookup(graph, path)  # raises: says which step failed
        return tuple(path.split("."))
    return found


def _place(graph: dict[str, Any], path: str) -> tuple[Node, str] | None:
    # The root as a mapping node over the same dict, so targets are keys like any other.
    return next(_places(DictNode(items=graph), path.split("."), 0), None)


def lookup(graph: dict[str, Any], path: str) -> Any:
    """The value at dotted ``path`` (``trainer.args.lr``, ``layers.0``), as :func:`walk` names it.

    Raises:
        PathError: a step names nothing.
    """
    place = _place(graph, path)
    if place is not None:
        return place[0].child(place[1])
    steps = path.split(".")
    return _step(_parent(graph, steps), steps[-1], path)  # raises: says which step failed


def assign(graph: dict[str, Any], path: str, value: Any) -> None:
    """Put ``value`` at dotted ``path``; a new mapping key or keyword is added.

    Args:
        graph: target name -> value; changed in place.
        path: a target, then steps as :func:`walk` names them.
        value: a plain Python value or a node.

    Raises:
        PathError: no target or no place before the last step, or the last
            step is not an index of a sequence.
    """
    place = _place(graph, path)
    if place is not None:
        place[0].set_child(place[1], value)
        return
    steps = path.split(".")
    parent = _parent(graph, steps)  # a new key or keyword below an existing place
    if len(steps) == 1:
        graph[path] = value
        return
    if not isinstance(parent, Node):
        raise PathError(f"{type(parent).__name__} value has no children", path)
    try:
        parent.set_child(steps[-1], value)
    except LookupError as e:
        raise PathError(str(e.args[0]), path) from None
