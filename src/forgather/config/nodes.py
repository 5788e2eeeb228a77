"""The node graph: what a loaded config is, before anything is built.

A config's graph maps target names to values. A value is a plain Python
scalar or a :class:`Node`. Nodes keep where they were written (the line of the
rendered YAML; the config maps it to the template line on demand) and an
optional name (``@name``), which code generation turns into a variable.

Every node answers the same three questions, so a pass never needs a type
switch to move through the graph: :meth:`Node.children` (what is below, keyed
by path step), :meth:`Node.child` and :meth:`Node.set_child` (one step of a
dotted path, read or written). :data:`TAGS` is the one table from a node's
``kind`` to its YAML tag; the loader, ``to_yaml`` and every label read it.

Decisions a reader may question:

* Nodes compare by identity. YAML anchors and aliases yield the *same* node
  object, and identity is what singleton sharing means.
* Containers (``!list``, ``!dict``, ``!tuple``, ``!dlist`` and untagged YAML
  sequences/mappings) have value semantics: every reference builds a fresh
  container (whose singleton elements are still shared). Use ``!call:dict``
  for one shared dict.
* Plain Python values in the graph (scalars, or a list that ``--set`` put
  there) are leaves, even when they are lists or dicts: they build as they
  are, and a path does not step into them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

#: Call kinds, by how often the callee runs.
SINGLETON, FACTORY, PARTIAL, META = "singleton", "factory", "partial", "meta"
#: The other node kinds.
VAR, LIST, TUPLE, DICT, DLIST = "var", "list", "tuple", "dict", "dlist"

#: Each node kind's YAML tag (without the ``!``), as ``to_yaml`` writes it.
TAGS: dict[str, str] = {
    SINGLETON: "call",
    FACTORY: "factory",
    PARTIAL: "partial",
    META: "meta",
    VAR: "var",
    LIST: "list",
    TUPLE: "tuple",
    DICT: "dict",
    DLIST: "dlist",
}
#: Other tags the loader accepts for a kind (``!lambda`` is deprecated).
_ALIASES = {SINGLETON: ("singleton",), PARTIAL: ("lambda",)}
#: Tag -> node kind, for the loader: :data:`TAGS` reversed, each alias after its tag.
KINDS: dict[str, str] = {
    t: kind for kind, tag in TAGS.items() for t in (tag, *_ALIASES.get(kind, ()))
}
CALL_KINDS = frozenset({SINGLETON, FACTORY, PARTIAL, META})

#: Reserved keywords of a call, never passed to the callee.
SEARCHPATH_KEY, LATENT_KEY = "submodule_searchpath", "latent_args"


@dataclass(eq=False)
class Node:
    """Base of all nodes: identity semantics, source line and optional name.

    Every node class has a ``kind`` (a key of :data:`TAGS`): a field of
    :class:`CallNode` and :class:`ListNode`, a class constant elsewhere. It is
    not declared here, so that it keeps its place among each class's fields.
    """

    line: int | None = field(default=None, kw_only=True)  # 0-based line of the rendered YAML
    column: int = field(default=0, kw_only=True)
    name: str | None = field(default=None, kw_only=True)

    def children(self) -> list[tuple[str, Any]]:
        """(key, value) pairs below this node, in order; keys are path steps."""
        return []

    def child(self, key: str) -> Any:
        """The value one path step ``key`` below this node.

        Raises:
            KeyError: no child has that key.
            LookupError: this kind of node has no children at all.
        """
        raise LookupError(f"{type(self).__name__} value has no children")

    def set_child(self, key: str, value: Any) -> None:
        """Replace (or, for mappings and keywords, add) the child at ``key``.

        Raises:
            IndexError: ``key`` is not an index of this sequence.
            LookupError: this kind of node has no children at all.
        """
        raise LookupError(f"{type(self).__name__} value has no children")


def _index(key: str, items: list) -> int | None:
    """``key`` as an index into ``items``, or None when it is not one."""
    return int(key) if key.isdigit() and int(key) < len(items) else None


@dataclass(eq=False)
class CallNode(Node):
    """``!call`` / ``!factory`` / ``!partial`` / ``!meta``: call ``spec`` with arguments.

    Path steps: ``0``, ``1``, ... for positional arguments, names for keywords
    (a digit that is not a positional index names a keyword).
    """

    kind: str = SINGLETON
    spec: str = ""
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def children(self) -> list[tuple[str, Any]]:
        return [(str(i), v) for i, v in enumerate(self.args)] + list(self.kwargs.items())

    def child(self, key: str) -> Any:
        index = _index(key, self.args)
        if index is not None:
            return self.args[index]
        return self.kwargs[key]

    def set_child(self, key: str, value: Any) -> None:
        index = _index(key, self.args)
        if index is not None:
            self.args[index] = value
        else:
            self.kwargs[key] = value

    @property
    def call_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the callee: the reserved keywords removed."""
        return {k: v for k, v in self.kwargs.items() if k not in (SEARCHPATH_KEY, LATENT_KEY)}

    @property
    def searchpath(self) -> Any:
        return self.kwargs.get(SEARCHPATH_KEY)

    @property
    def latent(self) -> Any:
        return self.kwargs.get(LATENT_KEY)


@dataclass(eq=False)
class VarNode(Node):
    """``!var``: a value from the build's context variables.

    It has no children: its default is read only when the variable is
    missing, and ``--set`` replaces the whole ``!var``.
    """

    kind: ClassVar[str] = VAR
    var: str = ""
    default: Any = None
    has_default: bool = False


class Container(Node):
    """A node that builds to a fresh Python container at every reference."""

    def assemble(self, values: list[Any]) -> list | tuple | dict:
        """The container holding ``values``, one per :meth:`children` entry, in order."""
        raise NotImplementedError


@dataclass(eq=False)
class ListNode(Container):
    """A list (``!list`` or an untagged sequence) or, with ``kind='tuple'``, a tuple."""

    items: list[Any] = field(default_factory=list)
    kind: str = LIST
    explicit: bool = False  # written with a tag (kept for to_yaml)

    def children(self) -> list[tuple[str, Any]]:
        return [(str(i), v) for i, v in enumerate(self.items)]

    def child(self, key: str) -> Any:
        index = _index(key, self.items)
        if index is None:
            raise KeyError(key)
        return self.items[index]

    def set_child(self, key: str, value: Any) -> None:
        index = _index(key, self.items)
        if index is None:
            raise IndexError(f"index {key!r} out of range ({len(self.items)} items)")
        self.items[index] = value

    def assemble(self, values: list[Any]) -> list | tuple:
        return tuple(values) if self.kind == TUPLE else list(values)


@dataclass(eq=False)
class _Keyed(Container):
    """A node whose ``items`` is a mapping; a key is named by its text (``1`` for ``1``)."""

    items: dict[Any, Any] = field(default_factory=dict)

    def children(self) -> list[tuple[str, Any]]:
        return [(str(k), v) for k, v in self.items.items()]

    def key(self, step: str) -> Any:
        """The key of ``items`` that path step ``step`` names.

        Raises:
            KeyError: none does.
        """
        if step in self.items:
            return step
        for key in self.items:
            if str(key) == step:
                return key
        raise KeyError(step)

    def child(self, key: str) -> Any:
        return self.items[self.key(key)]

    def set_child(self, key: str, value: Any) -> None:
        with contextlib.suppress(KeyError):  # else a new key, added as text
            key = self.key(key)
        self.items[key] = value


@dataclass(eq=False)
class DictNode(_Keyed):
    """A dict (``!dict`` or an untagged mapping)."""

    kind: ClassVar[str] = DICT
    explicit: bool = False

    def assemble(self, values: list[Any]) -> dict:
        return dict(zip(self.items, values, strict=True))


@dataclass(eq=False)
class DListNode(_Keyed):
    """``!dlist``: a mapping that builds to the list of its values, in key order.

    A path step may also name an item by its position (``steps.0``).
    """

    kind: ClassVar[str] = DLIST

    def key(self, step: str) -> Any:
        try:
            return super().key(step)
        except KeyError:
            index = _index(step, list(self.items))
            if index is None:
                raise
            return list(self.items)[index]

    def assemble(self, values: list[Any]) -> list:
        return list(values)


def yaml_tag(node: Node) -> str | None:
    """The tag that writes ``node`` in YAML, or None for an untagged sequence or mapping.

    A call carries its name after the SPEC (``!call:torch.nn:Linear@proj``),
    any other node after a colon (``!dict:@opts``, ``!var:@lr``).
    """
    if node.kind in (LIST, DICT) and not (node.explicit or node.name):
        return None
    tag = f"!{TAGS[node.kind]}"
    if isinstance(node, CallNode):
        tag += f":{node.spec}"
    elif node.name:
        tag += ":"
    return f"{tag}@{node.name}" if node.name else tag


def describe(node: Any) -> str:
    """A short label such as ``!factory:torch.nn:Linear@proj`` for messages and drawings.

    A label, not YAML: a ``!var`` shows its variable, containers always show
    their kind, and a name is appended as ``@name``.
    """
    if not isinstance(node, Node):
        return repr(node)
    text = f"!{TAGS[node.kind]}"
    if isinstance(node, CallNode):
        text += f":{node.spec}"
    elif isinstance(node, VarNode):
        text += f" {node.var}"
    return f"{text}@{node.name}" if node.name else text
