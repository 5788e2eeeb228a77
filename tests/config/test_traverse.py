"""traverse.py: the one walk (paths, order, sharing) and following a dotted path, on inline configs."""

import pytest

from forgather.config.nodes import CallNode, VarNode
from forgather.config.traverse import PathError, assign, first_paths, lookup, reference_counts, walk

CONFIG = """
shared: &s !call:dict {x: 1}
main: !call:operator:add
    arg0: !factory:list [[*s, 2]]
    arg1: !dict {1: one, k: *s}
    key: !dlist {first: !var v, second: 3}
"""


def test_walk_is_pre_order_with_paths_and_shared_nodes_once(load):
    visits = list(walk(load(CONFIG).graph))
    assert [(v.dotted, v.first) for v in visits] == [
        ("shared", True),
        ("shared.x", True),
        ("main", True),
        ("main.0", True),  # positional arguments by index
        ("main.0.0", True),  # a sequence by index
        ("main.0.0.0", False),  # the shared node again, not descended into
        ("main.0.0.1", True),
        ("main.1", True),
        ("main.1.1", True),  # mapping keys as text
        ("main.1.k", False),
        ("main.key", True),  # keywords by name
        ("main.key.first", True),
        ("main.key.second", True),
    ]
    assert visits[0].parent is None and visits[1].parent is visits[0].value
    assert isinstance(visits[11].value, VarNode)


def test_walk_from_targets_and_through_a_cycle(load):
    cfg = load("a: &a !call:list [[*a, 1]]\nb: 2\n")
    assert [(v.dotted, v.first) for v in walk(cfg.graph, ["a"])] == [
        ("a", True),
        ("a.0", True),
        ("a.0.0", False),  # the cycle back to a ends here
        ("a.0.1", True),
    ]


def test_reference_counts_and_first_paths(load):
    graph = load(CONFIG).graph
    counts = reference_counts(graph)
    assert counts[id(graph["shared"])] == 3
    assert counts[id(graph["main"])] == 1
    assert reference_counts(graph, ["main"])[id(graph["shared"])] == 2
    assert first_paths(graph)[id(graph["shared"])] == "shared"
    assert first_paths(graph)[id(graph["main"].kwargs["key"])] == "main.key"


def test_lookup_follows_every_path_walk_names(load):
    graph = load(CONFIG).graph
    for visit in walk(graph):
        assert lookup(graph, visit.dotted) is visit.value, visit.dotted
    assert lookup(graph, "main.key.1") == 3  # a !dlist item by position too


def test_assign_replaces_and_adds(load):
    cfg = load(CONFIG)
    graph = cfg.graph
    assign(graph, "main.0.0.1", 20)  # sequence item
    assign(graph, "main.1.1", "uno")  # mapping key 1, named as text
    assign(graph, "main.key.0", 30)  # !dlist item by position
    assign(graph, "shared.y", 2)  # a new keyword
    assign(graph, "main.1.new", 4)  # a new mapping key
    assert cfg.build("shared") == {"x": 1, "y": 2}
    assert graph["main"].args[0].args[0].items == [graph["shared"], 20]
    assert graph["main"].args[1].items == {1: "uno", "k": graph["shared"], "new": 4}
    assert graph["main"].kwargs["key"].items == {"first": 30, "second": 3}
    assign(graph, "shared", 7)  # a whole target
    assert graph["shared"] == 7


def test_a_call_takes_indices_for_positional_arguments_and_names_otherwise():
    node = CallNode(spec="f", args=[1, 2], kwargs={"k": 3})
    assert [node.child(k) for k in ("0", "1", "k")] == [1, 2, 3]
    node.set_child("1", 20)
    node.set_child("5", 50)  # not a positional index: a keyword named "5"
    assert (node.args, node.kwargs) == ([1, 20], {"k": 3, "5": 50})


@pytest.mark.parametrize(
    ("path", "where", "reason"),
    [
        ("nope.x", "nope.x", "no target 'nope'"),
        ("main.9.x", "main.9", "no such key or index '9'"),
        ("main.0.0.1.x", "main.0.0.1.x", "int value has no children"),
        ("main.0.0.7", "main.0.0.7", "index '7' out of range (2 items)"),
        ("main.key.first.x", "main.key.first.x", "VarNode value has no children"),
    ],
)
def test_assign_errors_name_the_failing_step(load, path, where, reason):
    graph = load(CONFIG).graph
    with pytest.raises(PathError) as info:
        assign(graph, path, 1)
    assert (info.value.path, info.value.reason) == (where, reason)


def test_lookup_errors(load):
    graph = load(CONFIG).graph
    with pytest.raises(PathError, match="no such key or index 'zz'"):
        lookup(graph, "main.zz")
    with pytest.raises(PathError, match="no target 'zz'"):
        lookup(graph, "zz")


def test_keys_with_dots(load):
    graph = load("rules: {norm\\.weight$: {std: 1}, a.b: 2}\n").graph
    paths = [v.dotted for v in walk(graph)]
    assert paths == ["rules", "rules.norm\\.weight$", "rules.norm\\.weight$.std", "rules.a.b"]
    assign(graph, "rules.norm\\.weight$.std", 3)
    assert lookup(graph, "rules.norm\\.weight$.std") == 3 and lookup(graph, "rules.a.b") == 2
