"""Where a value came from: the template line that set it, and what it overrode.

:meth:`Config.why <forgather.config.Config.why>` answers for one path of the
graph (``main.args.learning_rate``, spelled as ``--set`` and ``graph`` spell
it) with a :class:`Provenance`: the value, the template file:line that set it
(with the ``include``/``extends`` chain that led there), the earlier lines
that set the same key and lost (templates override by repeating a key), and
the chain of templates defining the block that line is in
(:mod:`~forgather.config.template_blocks`). :meth:`Config.annotated_lines
<forgather.config.Config.annotated_lines>` gives every rendered line its
template line (``forgather pp --annotate``).

Decision a reader may question: nodes of the graph keep their rendered line,
but plain values (a keyword's ``0.001``) do not, and a line stored per value
would cost every load. So the rendered YAML is composed again (PyYAML keeps a
mark on every node) and walked by the path, step by step as the loader built
the graph: mapping keys (the last of repeated keys wins, ``<<`` merged, ``.``
keys dropped), sequence items, a call's positional (``arg0``...,
``{args, kwargs}``) and keyword arguments. Only ``why`` and errors pay for it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import yaml
from yaml import MappingNode, ScalarNode, SequenceNode

from .errors import SourceLocation, chain_link_lead
from .nodes import CALL_KINDS, DLIST, KINDS, VAR, Node, describe
from .template_blocks import BlockDefinition, TemplateBlocks
from .traverse import lookup, path_keys

Locate = Callable[[int, int], "SourceLocation | None"]

_POSITIONAL = re.compile(r"^arg(\d+)$")
_NULL = "tag:yaml.org,2002:null"
_loader = yaml.SafeLoader("")


@dataclass(frozen=True)
class Provenance:
    """Where the value at ``path`` came from (what :meth:`Config.why` returns).

    Attributes:
        path: the dotted path asked about.
        value: the value in the graph (a plain value or a node).
        location: the template file:line that set it, with the chain of
            ``include``/``extends`` statements that led there; None when it
            was set on the command line or cannot be traced.
        rendered_line: its 1-based line in the rendered YAML (``pp``), if known.
        overridden: earlier lines that set the same key and lost to
            ``location`` (or to the command line), first first.
        block_chain: every definition of the innermost block holding
            ``location``'s line, along that template's inheritance chain,
            most derived first; empty when the line is in no block.
        command_line: set by ``--set`` (``Config.set_value``).
        macro_call: (macro name, the line that called it) when ``location``
            is inside a macro; the include/extends chain then describes the
            caller, not the macro's file.
    """

    path: str
    value: Any
    location: SourceLocation | None
    rendered_line: int | None = None
    overridden: tuple[SourceLocation, ...] = ()
    block_chain: tuple[BlockDefinition, ...] = field(default=())
    command_line: bool = False
    macro_call: tuple[str, SourceLocation] | None = None

    @property
    def block(self) -> str | None:
        """The name of the block holding the line, if any."""
        return self.block_chain[0].block if self.block_chain else None

    def format(self, shown: Callable[[str], str] = str) -> str:
        """The report ``forgather why`` prints; ``shown`` turns a file into the text shown."""
        where = (lambda loc: f"{shown(loc.file)}:{loc.line}") if shown is not str else str
        lines = [f"{self.path} = {_value_text(self.value)}"]
        if self.command_line:
            lines.append("  set on the command line (--set)")
        loc = self.location
        if loc is not None:
            rendered = f" (rendered line {self.rendered_line})" if self.rendered_line else ""
            lines.append(f"  set at {where(loc)}{rendered}")
            text = loc.excerpt()
            if text:
                lines.append(f"  {loc.line:>6} | {text}")
            if self.macro_call is not None:
                name, call = self.macro_call
                lines.append(f"  in macro {name}, called at {where(call)}")
            else:
                for link_file, link_line in loc.chain:
                    link = SourceLocation(link_file, link_line)
                    lead = chain_link_lead(link_file, link_line).lower()
                    lines.append(f"  {lead} {where(link)}")
        elif not self.command_line:
            lines.append("  set at: unknown (no template line found)")
        for old in self.overridden:
            lines.append(f"  overrides {where(old)}: {old.excerpt().strip()}")
        if self.block_chain:
            lines.append(f"  block {self.block!r}, most derived first:")
            width = max(len(f"{shown(d.file)}:{d.line}") for d in self.block_chain)
            for d in self.block_chain:
                here = loc is not None and d.file == loc.file and d.holds(loc.line)
                notes = ["calls super()" if d.calls_super else "no super()"]
                if here:
                    notes.append("holds this line")
                lines.append(f"    {f'{shown(d.file)}:{d.line}':<{width}}  {', '.join(notes)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _value_text(value: Any) -> str:
    if isinstance(value, Node):
        return describe(value)
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


class AnnotatedLine(NamedTuple):
    """A line of the rendered YAML and the template line that produced it (None: unknown)."""

    location: SourceLocation | None
    text: str


def annotated_lines(text: str, locate: Locate) -> list[AnnotatedLine]:
    """Each line of rendered ``text`` with its template file:line (``Config.annotated_lines``).

    Args:
        text: the rendered YAML.
        locate: maps a rendered line (0-based) to its template line.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the text's final newline ends the last line; it starts none
    return [AnnotatedLine(locate(number, 0), text) for number, text in enumerate(lines)]


# -- following a path through the composed YAML ------------------------------------


class _Found(NamedTuple):
    """Where a path step lands: the node whose mark is the line that set it (a
    mapping key, or the item itself), the value's node, and earlier keys it overrode."""

    mark_node: yaml.Node
    value: yaml.Node
    shadowed: tuple[yaml.Node, ...] = ()


def _key_text(node: yaml.Node) -> str | None:
    """A mapping key as a path step names it (``str`` of the loaded key)."""
    if not isinstance(node, ScalarNode):
        return None
    if node.tag.startswith("!"):
        return node.value
    try:
        return str(_loader.construct_object(node, deep=True))
    except (yaml.YAMLError, ValueError, TypeError):
        return node.value


def _pairs(node: MappingNode) -> list[tuple[str, yaml.Node, yaml.Node]]:
    with contextlib.suppress(yaml.YAMLError):
        _loader.flatten_mapping(node)  # `<<: *base` merged, as the loader does
    pairs = [(_key_text(k), k, v) for k, v in node.value]
    return [(t, k, v) for t, k, v in pairs if t is not None and not t.startswith(".")]


def _keyed(pairs: list, key: str) -> _Found | None:
    matches = [(k, v) for t, k, v in pairs if t == key]
    if not matches:
        return None
    return _Found(matches[-1][0], matches[-1][1], tuple(k for k, _ in matches[:-1]))


def _indexed(items: list[yaml.Node], key: str) -> _Found | None:
    if key.isdigit() and int(key) < len(items):
        return _Found(items[int(key)], items[int(key)])
    return None


def _argument(node: yaml.Node, key: str) -> _Found | None:
    """A call's argument ``key``: a position, else a keyword (as ``CallNode.child``)."""
    if isinstance(node, ScalarNode):
        plain_empty = node.value == "" and not node.style
        return None if plain_empty or key != "0" else _Found(node, node)
    if isinstance(node, SequenceNode):
        return _indexed(node.value, key)
    pairs = _pairs(node)
    names = {t for t, _, _ in pairs}
    if pairs and names <= {"args", "kwargs"}:
        args, kwargs = _keyed(pairs, "args"), _keyed(pairs, "kwargs")
        if args and isinstance(args.value, SequenceNode):
            found = _indexed(args.value.value, key)
            if found:
                return found
        if kwargs and isinstance(kwargs.value, MappingNode):
            return _keyed(_pairs(kwargs.value), key)
        return None
    positional = sorted((int(m[1]), t) for t in names if (m := _POSITIONAL.match(t)))
    if key.isdigit() and int(key) < len(positional):
        return _keyed(pairs, positional[int(key)][1])
    return _keyed([p for p in pairs if not _POSITIONAL.match(p[0])], key)


def _child(node: yaml.Node, key: str) -> _Found | None:
    """One path step below a composed YAML node, as the loader made the graph."""
    if node.tag.startswith("!"):
        kind = KINDS.get(node.tag[1:].partition("@")[0].partition(":")[0])
        if kind in CALL_KINDS:
            return _argument(node, key)
        if kind == VAR:
            return None
        if kind == DLIST and isinstance(node, MappingNode):
            pairs = [p for p in _pairs(node) if p[2].tag != _NULL]
            found = _keyed(pairs, key)
            order = list(dict.fromkeys(t for t, _, _ in pairs))
            if found is None and key.isdigit() and int(key) < len(order):
                found = _keyed(pairs, order[int(key)])
            return found
    if isinstance(node, SequenceNode):
        return _indexed(node.value, key)
    if isinstance(node, MappingNode):
        return _keyed(_pairs(node), key)
    return None


def _follow(root: yaml.Node | None, keys: tuple[str, ...]) -> _Found | None:
    found = None
    node = root
    for key in keys:
        if node is None:
            return None
        found = _child(node, key)
        if found is None:
            return None
        node = found.value
    return found


def why(
    path: str,
    *,
    graph: dict[str, Any],
    composed: yaml.Node | None,
    locate: Locate,
    blocks: TemplateBlocks,
    assigned: list[tuple[str, ...]] = (),
) -> Provenance:
    """The :class:`Provenance` of the value at ``path`` (what :meth:`Config.why` returns).

    Args:
        path: a target, then steps, as ``--set`` spells it.
        graph: the config's node graph.
        composed: the rendered YAML composed by PyYAML (``Config.composed_yaml()``).
        locate: maps a rendered (line, column), 0-based, to the template line.
        blocks: the blocks of the config's templates.
        assigned: the places ``--set`` assigned, as path keys.

    Raises:
        forgather.config.traverse.PathError: ``path`` names no place in the graph.
    """
    keys = path_keys(graph, path)
    value = lookup(graph, path)
    command_line = any(keys[: len(done)] == done for done in assigned)
    found = _follow(composed, keys)
    if found is None:
        return Provenance(path, value, None, command_line=command_line)
    mark = found.mark_node.start_mark
    location = locate(mark.line, mark.column)
    overridden = [locate(k.start_mark.line, k.start_mark.column) for k in found.shadowed]
    if command_line and location is not None:
        overridden.append(location)  # what the templates said, before --set
    overridden = tuple(o for o in overridden if o is not None)
    if command_line:
        return Provenance(path, value, None, mark.line + 1, overridden, (), True)
    chain: tuple[BlockDefinition, ...] = ()
    macro_call = None
    if location is not None:
        chain = blocks.chain_at(location.file, location.line)
        macro_call = _macro_call(location)
    return Provenance(
        path, value, location, mark.line + 1, overridden, chain, macro_call=macro_call
    )


_MACRO_OPEN = re.compile(r"^\s*(?:--|\{%-?)\s*macro\s+(\w+)\s*\(")
_MACRO_CLOSE = re.compile(r"^\s*(?:--|\{%-?)\s*endmacro\b")


def _macro_call(location: SourceLocation) -> tuple[str, SourceLocation] | None:
    """(name, calling line) when ``location`` is inside a macro, else None.

    The marked render records include/extends statements, not calls, so the
    call is found by name: the first line calling ``name(`` in the templates
    of the location's chain, innermost first (a macro is called from where it
    was imported).
    """
    lines = _file_lines(location.file)
    name = None
    for text in reversed(lines[: location.line]):
        if _MACRO_CLOSE.match(text):
            return None
        opened = _MACRO_OPEN.match(text)
        if opened:
            name = opened[1]
            break
    if name is None:
        return None
    call = re.compile(rf"(?<![\w.]){name}\s*\(")
    for file in dict.fromkeys(f for f, _ in reversed(location.chain)):
        for number, text in enumerate(_file_lines(file), 1):
            if call.search(text) and not _MACRO_OPEN.match(text):
                return name, SourceLocation(file, number)
    return None


def _file_lines(file: str) -> list[str]:
    try:
        with open(file, encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError:
        return []
