"""Looking at a graph without building it: ``check`` and graph drawings.

``check`` imports every SPEC and binds every call's arguments to the callee's
signature using placeholders, so a misspelt keyword is found without
constructing a single object. ``to_dot``/``to_mermaid`` draw the graph.
Both go through :func:`~forgather.config.traverse.walk`, so they meet nodes
in the same order and name them by the same paths as ``--set``.

Decision a reader may question: ``check`` builds the value of each
``submodule_searchpath`` keyword (it decides where ``.module:Name`` SPECs
are imported from), and nothing else. A ``.module:Name`` SPEC with no search
path below a ``!meta`` call's arguments is not imported: there it names a
module of the code a generator writes (the original Forgather's model
templates), which exists only once the config is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .build import Builder, signature_problem
from .errors import ConfigError, CycleError
from .nodes import META, PARTIAL, SEARCHPATH_KEY, CallNode, Node, VarNode, describe
from .policy import REMOTE_CODE_KEYWORD
from .traverse import walk

if TYPE_CHECKING:
    from .environment import Config


def check(cfg: Config) -> list[str]:
    """Problems of ``cfg`` as one-line messages (``file:line: reason``); empty when fine.

    Args:
        cfg: a loaded config; nothing in it is built except the values of
            ``submodule_searchpath`` keywords.
    """
    problems: list[str] = []
    builder = Builder({"pp_config": cfg.pp_template}, cfg.locate_node, cfg.policy)
    searchpaths: dict[int, list[str] | None] = {}  # node id -> search path in effect below it
    for_code = _below_meta_calls(cfg.graph)
    for visit in walk(cfg.graph):
        node = visit.value
        if not isinstance(node, Node) or not visit.first:
            continue
        searchpath = None if visit.parent is None else searchpaths[id(visit.parent)]
        if isinstance(node, CallNode):
            if id(node) in for_code and searchpath is None and node.spec.startswith("."):
                pass  # a module of the code to generate (`!meta:...generate_code`), not an import
            else:
                searchpath = _check_call(cfg, builder, node, visit.dotted, searchpath, problems)
        searchpaths[id(node)] = searchpath
    problems += [
        CycleError(f"cycle: {describe(node)} needs itself ({path})", cfg.locate_node(node)).one_line
        for node, path in _cycles(cfg.graph)
    ]
    return problems


def _below_meta_calls(graph: dict[str, Any]) -> set[int]:
    """Ids of the nodes a ``!meta`` call's arguments reach: a code generator reads them."""
    found: set[int] = set()
    pending = [
        child
        for visit in walk(graph)
        if isinstance(visit.value, CallNode) and visit.value.kind == META and visit.first
        for _, child in visit.value.children()
    ]
    while pending:
        node = pending.pop()
        if isinstance(node, Node) and id(node) not in found:
            found.add(id(node))
            pending.extend(child for _, child in node.children())
    return found


def _built_with(node: Node) -> list[tuple[str | None, Any]]:
    """What building ``node`` builds at once, by path step (None: the same path, as build names it).

    A partial's and a meta's arguments wait until called; a ``!var``'s default
    is built in its place.
    """
    if isinstance(node, CallNode) and node.kind in (PARTIAL, META):
        return [] if node.searchpath is None else [(SEARCHPATH_KEY, node.searchpath)]
    if isinstance(node, VarNode):
        return [(None, node.default)] if isinstance(node.default, Node) else []
    return node.children()


def _cycles(graph: dict[str, Any]) -> list[tuple[Node, str]]:
    """Each node that building would need while building it, with the path round the cycle."""
    found: list[tuple[Node, str]] = []
    done: set[int] = set()
    on_path: dict[int, int] = {}  # node id -> index in path
    path: list[str] = []

    def visit(value: Any, step: str) -> None:
        if not isinstance(value, Node) or id(value) in done:
            return
        path.append(step)
        if id(value) in on_path:
            found.append((value, " -> ".join(path[on_path[id(value)] :])))
        else:
            on_path[id(value)] = len(path) - 1
            for key, child in _built_with(value):
                visit(child, step if key is None else f"{step}.{key}")
            del on_path[id(value)]
            done.add(id(value))
        path.pop()

    for target, value in graph.items():
        visit(value, target)
    return found


def _check_call(
    cfg: Config, builder: Builder, node: CallNode, path: str, searchpath, problems
) -> Any:
    """Check one call; returns the submodule search path in effect for its arguments."""
    if node.searchpath is not None:
        try:
            built = builder.build(node.searchpath, path)
            searchpath = [built] if isinstance(built, str) else list(built)
        except ConfigError as e:
            problems.append(e.one_line)
    try:
        fn = builder.resolve(node, searchpath)
    except ConfigError as e:
        problems.append(e.one_line)
        return searchpath
    if node.call_kwargs.get(REMOTE_CODE_KEYWORD) is True:
        try:
            builder.check_remote_code(node)
        except ConfigError as e:
            problems.append(e.one_line)
    if node.kind == META or node.latent is not None:
        return searchpath  # a meta callee takes nodes; latent keywords are known only when built
    problem = signature_problem(
        fn, len(node.args), list(node.call_kwargs), partial=node.kind == PARTIAL
    )
    if problem:
        location = cfg.locate_node(node)
        reason = f"wrong arguments for {describe(node)}: {problem}"
        problems.append(f"{location}: {reason}" if location else reason)
    return searchpath


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
