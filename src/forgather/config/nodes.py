"""The node graph: what a loaded config is, before anything is built.

A config's graph maps target names to values. A value is a plain Python
scalar or a :class:`Node`. Nodes keep where they were written (the line of the
rendered YAML; the config maps it to the template line on demand) and an
optional name (``@name``), which code generation turns into a variable.

Decisions a reader may question:

* Nodes compare by identity. YAML anchors and aliases yield the *same* node
  object, and identity is what singleton sharing means.
* Containers (``!list``, ``!dict``, ``!tuple``, ``!dlist`` and untagged YAML
  sequences/mappings) have value semantics: every reference builds a fresh
  container (whose singleton elements are still shared). Use ``!call:dict``
  for one shared dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Call kinds, by how often the callee runs.
SINGLETON, FACTORY, PARTIAL, META = "singleton", "factory", "partial", "meta"

#: Reserved keywords of a call, never passed to the callee.
SEARCHPATH_KEY, LATENT_KEY = "submodule_searchpath", "latent_args"


@dataclass(eq=False)
class Node:
    """Base of all nodes: identity semantics, source line and optional name."""

    line: int | None = field(default=None, kw_only=True)  # 0-based line of the rendered YAML
    column: int = field(default=0, kw_only=True)
    name: str | None = field(default=None, kw_only=True)

    def children(self) -> list[tuple[str, Any]]:
        """(key, value) pairs below this node, in order; keys are path steps."""
        return []


@dataclass(eq=False)
class CallNode(Node):
    """``!call`` / ``!factory`` / ``!partial`` / ``!meta``: call ``spec`` with arguments."""

    kind: str = SINGLETON
    spec: str = ""
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)

    def children(self):
        return [(str(i), v) for i, v in enumerate(self.args)] + list(self.kwargs.items())

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
    """``!var``: a value from the build's context variables."""

    var: str = ""
    default: Any = None
    has_default: bool = False


@dataclass(eq=False)
class ListNode(Node):
    """A list (``!list`` or an untagged sequence) or, with ``kind='tuple'``, a tuple."""

    items: list[Any] = field(default_factory=list)
    kind: str = "list"
    explicit: bool = False  # written with a tag (kept for to_yaml)

    def children(self):
        return [(str(i), v) for i, v in enumerate(self.items)]


@dataclass(eq=False)
class DictNode(Node):
    """A dict (``!dict`` or an untagged mapping)."""

    items: dict[Any, Any] = field(default_factory=dict)
    explicit: bool = False

    def children(self):
        return [(str(k), v) for k, v in self.items.items()]


@dataclass(eq=False)
class DListNode(Node):
    """``!dlist``: a mapping that builds to the list of its values, in key order."""

    items: dict[Any, Any] = field(default_factory=dict)

    def children(self):
        return [(str(k), v) for k, v in self.items.items()]


def describe(node: Any) -> str:
    """A short label such as ``!factory:torch.nn:Linear@proj`` for messages."""
    if isinstance(node, CallNode):
        tag = {SINGLETON: "call", FACTORY: "factory", PARTIAL: "partial", META: "meta"}[node.kind]
        text = f"!{tag}:{node.spec}"
    elif isinstance(node, VarNode):
        text = f"!var {node.var}"
    elif isinstance(node, ListNode):
        text = f"!{node.kind}"
    elif isinstance(node, DictNode):
        text = "!dict"
    elif isinstance(node, DListNode):
        text = "!dlist"
    else:
        return repr(node)
    return f"{text}@{node.name}" if node.name else text
