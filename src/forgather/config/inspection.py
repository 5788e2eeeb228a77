"""Looking at a graph without building it: ``check`` and graph drawings.

``check`` imports every SPEC and binds every call's arguments to the callee's
signature using placeholders, so a misspelt keyword is found without
constructing a single object. ``to_dot``/``to_mermaid`` draw the graph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .build import Builder, signature_problem
from .errors import ConfigError
from .nodes import META, PARTIAL, CallNode, Node, describe
from .traverse import walk

if TYPE_CHECKING:
    from .environment import Config


def check(cfg: Config) -> list[str]:
    """Problems of ``cfg`` as one-line messages (``file:line: reason``); empty when fine."""
    problems: list[str] = []
    builder = Builder({"pp_config": cfg.pp}, cfg.locate_node)
    seen: set[int] = set()

    def report(node: Node, reason: str) -> None:
        location = cfg.locate_node(node)
        problems.append(f"{location}: {reason}" if location else reason)

    def visit(value: Any, path: str, searchpath) -> None:
        if not isinstance(value, Node) or id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, CallNode):
            if value.searchpath is not None:
                try:
                    built = builder.build(value.searchpath, path)
                    searchpath = [built] if isinstance(built, str) else list(built)
                except ConfigError as e:
                    problems.append(e.one_line)
            try:
                fn = builder.resolve(value, searchpath)
            except ConfigError as e:
                problems.append(e.one_line)
                fn = None
            if fn is not None and value.kind != META:
                n_args, keywords = len(value.args), list(value.call_kwargs)
                if value.latent is not None:
                    keywords = None  # keywords known only when built
                if keywords is not None:
                    problem = signature_problem(fn, n_args, keywords, partial=value.kind == PARTIAL)
                    if problem:
                        report(value, f"wrong arguments for {describe(value)}: {problem}")
        for key, child in value.children():
            visit(child, f"{path}.{key}", searchpath)

    for target, value in cfg.graph.items():
        visit(value, target, None)
    return problems


def _label(value: Any) -> str:
    if isinstance(value, Node):
        return describe(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _edges(cfg: Config, target: str | None):
    """Nodes (id -> label) and edges (parent id, child id, key) reachable from ``target``."""
    labels: dict[int, str] = {}
    edges: list[tuple[int, int, str]] = []
    ids: dict[int, int] = {}

    def key_of(value, visit_path) -> int:
        if isinstance(value, Node):
            return ids.setdefault(id(value), len(ids))
        return ids.setdefault(hash(("leaf", visit_path)), len(ids))

    roots = None if target is None else [target]
    for v in walk(cfg.graph, roots):
        me = key_of(v.value, v.path)
        if v.parent is None:
            labels.setdefault(me, f"{v.path[0]} = {_label(v.value)}")
        else:
            labels.setdefault(me, _label(v.value))
            edges.append((ids[id(v.parent)], me, v.path[-1]))
    return labels, edges


def to_dot(cfg: Config, target: str | None = None) -> str:
    """The graph as Graphviz DOT."""
    labels, edges = _edges(cfg, target)
    lines = ["digraph config {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for n, label in labels.items():
        escaped = label.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'  n{n} [label="{escaped}"];')
    for a, b, key in edges:
        lines.append(f'  n{a} -> n{b} [label="{key}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(cfg: Config, target: str | None = None) -> str:
    """The graph as a Mermaid flowchart."""
    labels, edges = _edges(cfg, target)
    lines = ["flowchart LR"]
    for n, label in labels.items():
        escaped = label.replace('"', "#quot;")
        lines.append(f'  n{n}["{escaped}"]')
    for a, b, key in edges:
        lines.append(f"  n{a} -->|{key}| n{b}")
    return "\n".join(lines) + "\n"


__all__ = ["check", "to_dot", "to_mermaid"]
