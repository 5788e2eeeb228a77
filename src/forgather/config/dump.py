"""``to_yaml``: node graph -> YAML text that loads back into an equivalent graph.

We build PyYAML representation nodes and let PyYAML's serializer write them;
a node object used in several places becomes one anchor and aliases, which is
exactly how the loader made it shared.
"""

from __future__ import annotations

from typing import Any

import yaml

from .nodes import (
    FACTORY,
    META,
    PARTIAL,
    SINGLETON,
    CallNode,
    DictNode,
    DListNode,
    ListNode,
    Node,
    VarNode,
)

_TAGS = {SINGLETON: "call", FACTORY: "factory", PARTIAL: "partial", META: "meta"}


class _Dumper(yaml.SafeDumper):
    pass


def _tag(base: str, name: str | None, separator: str = "") -> str:
    return f"!{base}{separator}@{name}" if name else f"!{base}"


class _Representer:
    def __init__(self):
        self.dumper = _Dumper(None)
        self.memo: dict[int, yaml.Node] = {}

    def mapping(self, tag: str, items: dict[Any, Any]) -> yaml.MappingNode:
        node = yaml.MappingNode(tag, [], flow_style=False)
        for key, value in items.items():
            node.value.append((self.node(key), self.node(value)))
        return node

    def node(self, value: Any) -> yaml.Node:
        if not isinstance(value, Node):
            return self.dumper.represent_data(value)
        if id(value) in self.memo:
            return self.memo[id(value)]
        if isinstance(value, CallNode):
            tag = f"!{_TAGS[value.kind]}:{value.spec}" + (f"@{value.name}" if value.name else "")
            if not value.args and not value.kwargs:
                out = yaml.MappingNode(tag, [], flow_style=True)  # `!tag {}`: no arguments
            elif value.kwargs:
                kwargs = {f"arg{i}": v for i, v in enumerate(value.args)} | value.kwargs
                out = yaml.MappingNode(tag, [], flow_style=False)
                self.memo[id(value)] = out
                out.value = self.mapping(tag, kwargs).value
            else:
                out = yaml.SequenceNode(tag, [], flow_style=False)
                self.memo[id(value)] = out
                out.value = [self.node(v) for v in value.args]
        elif isinstance(value, VarNode):
            tag = _tag("var", value.name, ":")
            if value.has_default:
                out = self.mapping(tag, {"name": value.var, "default": value.default})
            else:
                out = yaml.ScalarNode(tag, value.var)
        elif isinstance(value, ListNode):
            tag = _tag(value.kind, value.name, ":") if value.explicit or value.kind == "tuple" else "tag:yaml.org,2002:seq"
            out = yaml.SequenceNode(tag, [], flow_style=False)
            self.memo[id(value)] = out
            out.value = [self.node(v) for v in value.items]
        elif isinstance(value, DictNode):
            tag = _tag("dict", value.name, ":") if value.explicit or value.name else "tag:yaml.org,2002:map"
            out = yaml.MappingNode(tag, [], flow_style=False)
            self.memo[id(value)] = out
            out.value = self.mapping(tag, value.items).value
        else:
            assert isinstance(value, DListNode)
            out = yaml.MappingNode(_tag("dlist", value.name, ":"), [], flow_style=False)
            self.memo[id(value)] = out
            out.value = self.mapping(out.tag, value.items).value
            if not value.items:
                out = yaml.MappingNode(out.tag, [], flow_style=True)
        self.memo[id(value)] = out
        return out


def to_yaml(graph: dict[str, Any]) -> str:
    """YAML text for ``graph``; loading it gives an equivalent graph."""
    representer = _Representer()
    root = yaml.MappingNode("tag:yaml.org,2002:map", [], flow_style=False)
    for key, value in graph.items():
        root.value.append((representer.node(key), representer.node(value)))
    return yaml.serialize(root, Dumper=_Dumper, width=100, allow_unicode=True)
