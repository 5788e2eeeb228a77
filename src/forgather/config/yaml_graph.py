"""Rendered YAML -> node graph (LANGUAGE.md, section 3).

We compose the YAML into PyYAML's representation nodes (which keeps line
numbers and turns anchors/aliases into one shared node) and convert that tree
ourselves; PyYAML's object constructor is used only for plain scalars.

Decision a reader may question: keys that start with ``.`` are dropped from
*every* mapping, not only the root: they are places to define anchored values
for reuse, and a call's keyword mapping is as natural a place as the root.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import yaml
from yaml import MappingNode, ScalarNode, SequenceNode

from .errors import SourceLocation, YamlError
from .nodes import (
    CALL_KINDS,
    DLIST,
    KINDS,
    LIST,
    TUPLE,
    VAR,
    CallNode,
    DictNode,
    DListNode,
    ListNode,
    Node,
    VarNode,
)
from .spec import parse_spec

Locate = Callable[[int, int], "SourceLocation | None"]

_EXPECTED = ", ".join(f"!{tag}" for tag in list(KINDS)[:-1]) + f" or !{list(KINDS)[-1]}"
_POSITIONAL_KEY = re.compile(r"^arg(\d+)$")
_SURROGATE = re.compile("[\ud800-\udfff]")
_STD = "tag:yaml.org,2002:"
_STR = _STD + "str"
_CORE_TAGS = frozenset(
    _STD + t for t in ("str", "int", "float", "bool", "null", "timestamp", "binary")
)
# libyaml's composer is several times faster and keeps the same marks; it is used
# when present, except for documents that redefine an anchor (see below).
_FAST_COMPOSER = getattr(yaml, "CSafeLoader", None)


class _Redefining:
    """PyYAML's composer, but an anchor may be defined again (YAML 1.1 and 1.2 allow
    it: an alias refers to the most recent node with that anchor). Templates rely
    on this: a base defines ``&optimizer`` and a config included later redefines it.
    """

    def compose_node(self, parent, index):
        if not self.check_event(yaml.AliasEvent):
            anchor = self.peek_event().anchor
            if anchor is not None:
                self.anchors.pop(anchor, None)
        return super().compose_node(parent, index)


class _RedefiningLoader(_Redefining, yaml.SafeLoader):
    """The redefining composer over PyYAML's pure-Python scanner and parser."""


def _libyaml_redefining_loader() -> type | None:
    """The redefining composer (Python) over libyaml's parser events (C): the
    scanning and parsing, nine tenths of the time, stay in C; the nodes, marks
    included, are the ones the pure-Python loader composes."""
    if _FAST_COMPOSER is None:
        return None
    from yaml._yaml import CParser  # present wherever CSafeLoader is

    class _Loader(_Redefining, yaml.composer.Composer, CParser, yaml.resolver.Resolver):
        def __init__(self, stream):
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    return _Loader


_FAST_REDEFINING = _libyaml_redefining_loader()


#: What could be an anchor: ``&`` and the characters an anchor name may have.
_ANCHOR_LIKE = re.compile(r"&([^\s,\[\]{}]+)")


def _may_redefine_an_anchor(text: str) -> bool:
    """False only if no anchor name can occur twice (a ``&name`` in a string counts
    too: a false True costs speed, never correctness)."""
    names = _ANCHOR_LIKE.findall(text)
    return len(set(names)) < len(names)


def compose(text: str) -> yaml.Node | None:
    """``text`` composed into PyYAML's nodes (marks kept, an anchor may be redefined)."""
    if _FAST_COMPOSER is not None:
        if not _may_redefine_an_anchor(text):  # libyaml's composer would refuse it
            try:
                return yaml.compose(text, Loader=_FAST_COMPOSER)
            except yaml.composer.ComposerError as e:
                if "duplicate anchor" not in str(e.context or e.problem):
                    raise
        return yaml.compose(text, Loader=_FAST_REDEFINING)
    return yaml.compose(text, Loader=_RedefiningLoader)


def _is_plain(ynode: ScalarNode) -> bool:
    """Unquoted? (PyYAML's composer says None, libyaml's says "".)"""
    return not ynode.style


class _Converter:
    def __init__(self, locate: Locate):
        self.locate = locate
        self.memo: dict[int, Any] = {}
        self.loader = yaml.SafeLoader("")

    def error(self, reason: str, ynode: yaml.Node) -> YamlError:
        mark = ynode.start_mark
        return YamlError(reason, self.locate(mark.line, mark.column))

    # -- entry ------------------------------------------------------------
    def root(self, ynode: yaml.Node | None) -> dict[str, Any]:
        if ynode is None:
            return {}
        if not isinstance(ynode, MappingNode) or ynode.tag != _STD + "map":
            raise self.error("the config's root must be a mapping of target names", ynode)
        graph = self.mapping(ynode)
        for key in graph:
            if not isinstance(key, str):
                raise self.error(f"target names must be strings, not {key!r}", ynode)
        return graph

    def value(self, ynode: yaml.Node) -> Any:
        key = id(ynode)
        if key in self.memo:
            return self.memo[key]
        tag = ynode.tag
        if tag.startswith("!"):
            result = self.tagged(ynode, tag[1:])
        elif isinstance(ynode, ScalarNode):
            result = self.scalar(ynode)
        elif isinstance(ynode, SequenceNode):
            if tag != _STD + "seq":
                raise self.error(f"unsupported tag {tag!r}", ynode)
            result = self.memo[key] = ListNode(line=ynode.start_mark.line)
            result.items = [self.value(v) for v in ynode.value]
        else:
            if tag != _STD + "map":
                raise self.error(f"unsupported tag {tag!r}", ynode)
            result = self.memo[key] = DictNode(line=ynode.start_mark.line)
            result.items = self.mapping(ynode)
        self.memo[key] = result
        return result

    # -- pieces -----------------------------------------------------------
    def text(self, ynode: ScalarNode) -> str:
        """A scalar's text; a lone surrogate (PyYAML's composer accepts a ``"\\ud800"``
        escape, libyaml's does not) is refused either way, so no graph holds one."""
        if _SURROGATE.search(ynode.value):
            raise self.error("a lone surrogate (\\ud800-\\udfff) cannot be a YAML value", ynode)
        return ynode.value

    def scalar(self, ynode: ScalarNode, *, implicit: bool = False) -> Any:
        self.text(ynode)
        if implicit:  # a tagged scalar: resolve its value as if it had no tag
            plain = _is_plain(ynode)
            tag = self.loader.resolve(ScalarNode, ynode.value, (plain, not plain))
            ynode = ScalarNode(tag, ynode.value, ynode.start_mark, ynode.end_mark, ynode.style)
        if ynode.tag == _STR:  # what the constructor would return, without its machinery
            return ynode.value
        if ynode.tag not in _CORE_TAGS:
            raise self.error(f"unsupported tag {ynode.tag!r}", ynode)
        try:
            return self.loader.construct_object(ynode, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as e:
            raise self.error(f"bad scalar {ynode.value!r}: {e}", ynode) from None

    def mapping(self, ynode: MappingNode) -> dict[Any, Any]:
        try:
            self.loader.flatten_mapping(ynode)
        except yaml.YAMLError as e:
            raise self.error(f"bad merge key: {getattr(e, 'problem', e)}", ynode) from None
        result: dict[Any, Any] = {}
        for key_node, value_node in ynode.value:
            if not isinstance(key_node, ScalarNode):
                raise self.error("mapping keys must be scalars", key_node)
            key = self.scalar(key_node, implicit=key_node.tag.startswith("!"))
            try:
                hash(key)
            except TypeError:
                raise self.error(f"unhashable key {key!r}", key_node) from None
            value = self.value(value_node)
            result[key] = value  # a repeated key: the later one wins
        return {k: v for k, v in result.items() if not (isinstance(k, str) and k.startswith("."))}

    def tagged(self, ynode: yaml.Node, tag: str) -> Any:
        base, _, name = tag.partition("@")
        name = name or None
        written, _, spec = base.partition(":")
        kind = KINDS.get(written)  # the one tag table, nodes.TAGS, plus its aliases
        line, column = ynode.start_mark.line, ynode.start_mark.column
        if name is not None and not re.match(r"^[A-Za-z_]\w*$", name):
            raise self.error(f"bad node name {name!r} in tag !{tag}", ynode)
        if kind in CALL_KINDS:
            try:
                parse_spec(spec)
            except ValueError as e:
                raise self.error(f"{e} (in tag !{tag})", ynode) from None
            node = CallNode(kind=kind, spec=spec, line=line, column=column, name=name)
            self.memo[id(ynode)] = node
            node.args, node.kwargs = self.arguments(ynode)
            return node
        if spec and kind is not None:  # a container or !var given a SPEC
            raise self.error(f"unknown tag !{tag} (!{written} takes no :SPEC)", ynode)
        if spec:
            import difflib  # only here: pp of a good config never needs it

            close = difflib.get_close_matches(written, list(KINDS), n=1)
            hint = f"did you mean !{close[0]}:{spec}? " if close else ""
            raise self.error(f"unknown tag !{tag} ({hint}expected {_EXPECTED})", ynode)
        if kind == VAR:
            return self.var(ynode, line, column, name)
        if kind is not None:
            return self.container(ynode, kind, tag, line, column, name)
        raise self.error(f"unknown tag !{tag} (expected {_EXPECTED})", ynode)

    def arguments(self, ynode: yaml.Node) -> tuple[list[Any], dict[str, Any]]:
        if isinstance(ynode, ScalarNode):
            if ynode.value == "" and _is_plain(ynode):
                return [], {}
            return [self.scalar(ynode, implicit=True)], {}
        if isinstance(ynode, SequenceNode):
            return [self.value(v) for v in ynode.value], {}
        items = self.mapping(ynode)
        if items and set(items) <= {"args", "kwargs"}:
            args, kwargs = items.get("args", []), items.get("kwargs", {})
            args = args.items if isinstance(args, ListNode) else args
            kwargs = kwargs.items if isinstance(kwargs, DictNode) else kwargs
            if not isinstance(args, list) or not isinstance(kwargs, dict):
                raise self.error("'args' must be a sequence and 'kwargs' a mapping", ynode)
            items = {**{f"arg{i}": v for i, v in enumerate(args)}, **kwargs}
        positional = sorted(
            (
                (int(m[1]), k)
                for k in items
                if isinstance(k, str) and (m := _POSITIONAL_KEY.match(k))
            ),
        )
        args = [items.pop(k) for _, k in positional]
        for key in items:
            if not isinstance(key, str):
                raise self.error(f"keyword argument names must be strings, not {key!r}", ynode)
        return args, items

    def var(self, ynode, line, column, name) -> VarNode:
        if isinstance(ynode, ScalarNode) and ynode.value:
            return VarNode(var=self.text(ynode), line=line, column=column, name=name)
        if isinstance(ynode, MappingNode):
            items = self.mapping(ynode)
            if (
                "name" in items
                and isinstance(items["name"], str)
                and set(items) <= {"name", "default"}
            ):
                return VarNode(
                    var=items["name"],
                    default=items.get("default"),
                    has_default="default" in items,
                    line=line,
                    column=column,
                    name=name,
                )
        raise self.error("!var needs a variable name, or a mapping {name: N, default: D}", ynode)

    def container(self, ynode, kind, tag, line, column, name) -> Any:
        empty = isinstance(ynode, ScalarNode) and ynode.value == ""
        if kind in (LIST, TUPLE):
            node = ListNode(kind=kind, explicit=True, line=line, column=column, name=name)
            self.memo[id(ynode)] = node
            if isinstance(ynode, SequenceNode):
                node.items = [self.value(v) for v in ynode.value]
            elif not empty:
                raise self.error(f"!{tag} needs a sequence", ynode)
            return node
        node = DListNode() if kind == DLIST else DictNode(explicit=True)
        node.line, node.column, node.name = line, column, name
        self.memo[id(ynode)] = node
        if isinstance(ynode, MappingNode):
            items = self.mapping(ynode)
            if kind == DLIST:
                items = {k: v for k, v in items.items() if v is not None}
            node.items = items
        elif not empty:
            raise self.error(f"!{tag} needs a mapping", ynode)
        return node


#: How deep a graph may nest (longest chain of nodes, through aliases too). Every
#: later pass recurses, so a graph built to exhaust Python's stack is refused here.
MAX_DEPTH = 100
# What YAML allows in a stream (YAML 1.1, as PyYAML's reader checks it).
_NOT_YAML = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset)
    return line, offset - (text.rfind("\n", 0, offset) + 1)


def _check_characters(text: str, locate: Locate) -> None:
    bad = _NOT_YAML.search(text)
    if bad is None:
        return
    ch = bad.group()
    what = "a lone surrogate" if "\ud800" <= ch <= "\udfff" else "a control character"
    location = locate(*_position(text, bad.start()))
    raise YamlError(
        f"character {ch!r} ({what}) cannot appear in YAML; write it as an escape in a double-quoted string",
        location,
    )


def _children(node: Node) -> list[Any]:
    values = [v for _, v in node.children()]
    if isinstance(node, VarNode) and isinstance(node.default, Node):
        values.append(node.default)
    return values


def _height(root: Any, heights: dict[int, int]) -> int:
    """Longest chain of nodes from ``root`` down, a back edge (a cycle) not followed."""
    if not isinstance(root, Node):
        return 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, done = stack.pop()
        if done:
            on_path.discard(id(node))
            below = [heights.get(id(c), 0) for c in _children(node) if isinstance(c, Node)]
            heights[id(node)] = 1 + max(below, default=0)
        elif id(node) not in heights and id(node) not in on_path:
            on_path.add(id(node))
            stack.append((node, True))
            stack.extend((c, False) for c in _children(node) if isinstance(c, Node))
    return heights[id(root)]


def _check_depth(graph: dict[str, Any], locate: Locate) -> None:
    heights: dict[int, int] = {}
    for target, value in graph.items():
        if _height(value, heights) > MAX_DEPTH:
            raise YamlError(
                f"target {target!r} nests more than {MAX_DEPTH} levels deep",
                locate(value.line, value.column) if value.line is not None else None,
            )


def _source_mark(text: str, mark, locate: Locate) -> SourceLocation | None:
    """Where a YAML mark points in the user's source, with its column when the
    source line is the rendered line (no Jinja on it), so a caret can point at it.

    A mark at the end of the text (an unclosed ``[`` the parser ran out of
    text for) moves to the end of the last non-blank line: the line after it
    belongs to no template, or to whichever one printed the final newline.
    """
    if mark is None:
        return None
    lines = text.split("\n")
    line, column = mark.line, mark.column
    if line >= len(lines) or not lines[line].strip():
        before = [n for n in range(min(line, len(lines) - 1), -1, -1) if lines[n].strip()]
        if not before:
            return None
        line = before[0]
        column = len(lines[line].rstrip())
    location = locate(line, column)
    if location is None:
        return None
    if lines[line].rstrip("\r") == location.excerpt():
        return dataclasses.replace(location, column=column)
    return location


def load_graph(text: str, locate: Locate) -> dict[str, Any]:
    """Parse rendered YAML into a node graph.

    Args:
        text: rendered YAML (one document whose root is a mapping).
        locate: maps a rendered (line, column), both 0-based, to the user's source.

    Raises:
        YamlError: for YAML syntax errors, characters YAML does not allow,
            unknown tags, malformed nodes and graphs nested more than
            :data:`MAX_DEPTH` levels deep.
    """
    _check_characters(text, locate)
    try:
        root = compose(text)
        graph = _Converter(locate).root(root)
    except yaml.MarkedYAMLError as e:
        reason = " ".join(str(p) for p in (e.context, e.problem) if p)
        location = _source_mark(text, e.problem_mark or e.context_mark, locate)
        opened_at = _source_mark(text, e.context_mark, locate) if e.problem_mark else None
        if location is None:
            location, opened_at = opened_at, None
        raise YamlError(f"YAML syntax error: {reason}", location, opened_at=opened_at) from None
    except yaml.YAMLError as e:
        raise YamlError(f"YAML error: {e}") from None
    except RecursionError:
        raise YamlError(f"the YAML nests more than {MAX_DEPTH} levels deep") from None
    _check_depth(graph, locate)
    return graph
