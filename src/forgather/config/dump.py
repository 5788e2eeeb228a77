"""``to_yaml``: node graph -> YAML text that loads back into an equivalent graph.

We build PyYAML representation nodes and let PyYAML's serializer write them;
a node object used in several places becomes one anchor and aliases, which is
exactly how the loader made it shared. Tags come from
:func:`~forgather.config.nodes.yaml_tag`, the one node-kind -> tag table.

Decision a reader may question: this pass recurses itself instead of
consuming :func:`~forgather.config.traverse.walk`. YAML is a tree of
sequences and mappings whose shape differs per node kind (a call's arguments
become ``argN`` keys beside its keywords, a ``!var`` with a default becomes a
mapping), and a shared node must be registered before its children are
written so that a cycle becomes an alias; a pre-order stream of visits would
have to be reassembled into that tree.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from .nodes import CallNode, Container, Node, VarNode, yaml_tag
from .preprocess import escape_template

_STD = "tag:yaml.org,2002:"


#: Strings that could read as Jinja or line syntax once the YAML is loaded as a template.
_RISKY = re.compile(r"[{}#%\r\n\x85\u2028\u2029]|^\s*(--|<<|>>|==|=>)(\s|$)|^\s*\[")
_ESCAPED = {"\0": "0", "\a": "a", "\b": "b", "\t": "t", "\n": "n", "\v": "v", "\f": "f",
            "\r": "r", "\x1b": "e", '"': '"', "\\": "\\"}  # fmt: skip


def _printable(ch: str) -> bool:
    return (
        "\x20" <= ch <= "\x7e"
        or "\xa0" <= ch <= "\ud7ff"
        or "\ue000" <= ch <= "\ufffd"
        and ch != "\ufeff"
        or "\U00010000" <= ch <= "\U0010ffff"
    )


def _escape(ch: str) -> str:
    if ch in _ESCAPED:
        return "\\" + _ESCAPED[ch]
    if ch in "{}#%\x85\u2028\u2029\ufeff" or not _printable(ch):  # YAML line breaks and BOM too
        code = ord(ch)
        return (
            f"\\x{code:02X}"
            if code < 0x100
            else f"\\u{code:04X}"
            if code < 0x10000
            else f"\\U{code:08X}"
        )
    return ch


class _Dumper(yaml.SafeDumper):
    """YAML that also loads back as a template: a string that Jinja or the line
    syntax could read (``{{``, ``{#``, `` ## ``, ``-- x``, a line break) is
    written double-quoted on one line with ``{``, ``}``, ``#`` and ``%`` escaped.
    """

    def choose_scalar_style(self):
        if isinstance(self.event.value, str) and _RISKY.search(self.event.value):
            if self.analysis is None:
                self.analysis = self.analyze_scalar(self.event.value)
            return '"'
        return super().choose_scalar_style()

    def write_double_quoted(self, text, split=True):
        if not _RISKY.search(text):
            return super().write_double_quoted(text, split)
        self.write_indicator('"', True)
        data = "".join(_escape(ch) for ch in text)
        self.column += len(data)
        self.stream.write(data.encode(self.encoding) if self.encoding else data)
        self.write_indicator('"', False)
        return None


class _Representer:
    def __init__(self):
        self.dumper = _Dumper(None)
        self.memo: dict[int, yaml.Node] = {}

    def pairs(self, items: dict[Any, Any]) -> list[tuple[yaml.Node, yaml.Node]]:
        return [(self.node(key), self.node(value)) for key, value in items.items()]

    def node(self, value: Any) -> yaml.Node:
        if not isinstance(value, Node):
            return self.dumper.represent_data(value)
        if id(value) in self.memo:
            return self.memo[id(value)]
        out = self.var(value) if isinstance(value, VarNode) else self.collection(value)
        self.memo[id(value)] = out
        return out

    def var(self, value: VarNode) -> yaml.Node:
        if not value.has_default:
            return yaml.ScalarNode(yaml_tag(value), value.var)
        out = yaml.MappingNode(yaml_tag(value), [], flow_style=False)
        out.value = self.pairs({"name": value.var, "default": value.default})
        return out

    def collection(self, value: CallNode | Container) -> yaml.Node:
        """A call or a container: a sequence or a mapping, registered before its children."""
        tag, items = yaml_tag(value), _inside(value)
        if isinstance(items, list):
            out = yaml.SequenceNode(tag or _STD + "seq", [], flow_style=False)
            self.memo[id(value)] = out  # before the children: a cycle becomes an alias
            out.value = [self.node(v) for v in items]
        else:
            out = yaml.MappingNode(tag or _STD + "map", [], flow_style=False)
            self.memo[id(value)] = out
            out.value = self.pairs(items)
        return out


def _inside(value: CallNode | Container) -> list | dict:
    """What is written after the tag: a sequence, or a mapping (``{}`` when empty).

    A call's arguments are a sequence when all are positional, else a mapping
    where positional ones become ``argN`` keys.
    """
    if not isinstance(value, CallNode):
        return value.items
    if value.args and not value.kwargs:
        return value.args
    return {f"arg{i}": v for i, v in enumerate(value.args)} | value.kwargs


def to_yaml(graph: dict[str, Any]) -> str:
    """YAML text for ``graph``; loading it gives an equivalent graph.

    Args:
        graph: target name -> value.

    Returns:
        One YAML document whose root maps the target names; it loads back
        through :class:`~forgather.config.ConfigEnvironment` (rendered as a
        template first) as well as through any YAML parser.
    """
    representer = _Representer()
    root = yaml.MappingNode(_STD + "map", [], flow_style=False)
    root.value = representer.pairs(graph)
    # No folding: a continuation line could start with line syntax (`-- x`).
    text = yaml.serialize(root, Dumper=_Dumper, width=math.inf, allow_unicode=True)
    return escape_template(text)  # a no-op unless a line escaped the scalar styles above
