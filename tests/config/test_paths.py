"""Every path that `forgather graph` draws is one that `--set` (Config.set_value) accepts.

`check`, `graph` and `--set` name places in a graph the same way (config/traverse.py).
This test reads the paths back from the drawing itself (DOT edges from a target,
through shared nodes too) on the example projects' configs and the library
templates, and sets each one to the value already there.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest

from forgather.config import Config, to_dot
from forgather.config.nodes import Node, describe
from forgather.config.traverse import lookup, walk
from forgather.project import Project

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIGS = [
    (meta.parent, name)
    for meta in sorted((ROOT / "examples").glob("**/meta.yaml"))
    for name in Project.open(str(meta.parent)).config_names()
]
# Library templates loaded as configs (`-t NAME`); causal_lm.yaml is a base for the
# model templates (it aliases an anchor they define) and is loaded through them.
LIBRARY_VARS = {  # the variables a template documents as required
    "text_dataset.yaml": {"data_path": "/nonexistent/corpus.txt"},
    "finetune.yaml": {"model_path": "/nonexistent/model", "data_path": "/nonexistent/chat.jsonl"},
}
LIBRARY = sorted(
    p.name for p in (ROOT / "templatelib").glob("*/*.yaml") if p.name != "causal_lm.yaml"
)
_NODE = re.compile(r'^  n(\d+) \[label="(.*)"\];$', re.M)
_EDGE = re.compile(r'^  n(\d+) -> n(\d+) \[label="(.*)"\];$', re.M)


def drawn_paths(cfg: Config, target: str) -> list[tuple[str, str]]:
    """(path, label) of every place reachable in ``to_dot(cfg, target)``, by its edge labels."""
    dot = to_dot(cfg, target)
    labels = {
        int(n): label.replace('\\"', '"').replace("\\\\", "\\") for n, label in _NODE.findall(dot)
    }
    labels[0] = labels[0].removeprefix(f"{target} = ")  # the target's own node
    edges = defaultdict(list)
    for a, b, key in _EDGE.findall(dot):
        edges[int(a)].append((key, int(b)))
    found = []

    def follow(n: int, path: str, on_path: frozenset) -> None:
        found.append((path, labels[n]))
        for key, m in edges[n]:
            if m not in on_path:  # a cycle is drawn as an edge back; its paths are endless
                follow(m, f"{path}.{key}", on_path | {m})

    follow(0, target, frozenset({0}))
    return found


def label(value) -> str:
    """What the drawing shows for ``value``: a node's tag, or a value's repr cut to 40 characters."""
    text = describe(value)
    return text if isinstance(value, Node) or len(text) <= 40 else text[:37] + "..."


def assert_every_drawn_path_is_settable(cfg: Config) -> None:
    before = cfg.to_yaml()
    paths = [item for target in cfg.targets for item in drawn_paths(cfg, target)]
    assert len(paths) >= sum(1 for _ in walk(cfg.graph))  # shared nodes add paths, never remove
    for path, drawn in paths:
        value = lookup(cfg.graph, path)
        assert label(value) == drawn, path  # the path leads to the very node drawn there
        cfg.set_value(path, value)
    assert cfg.to_yaml() == before  # each place got back what it held


@pytest.mark.parametrize(
    ("project", "name"), EXAMPLE_CONFIGS, ids=[f"{p.name}/{n}" for p, n in EXAMPLE_CONFIGS]
)
def test_example_config_paths(project, name):
    proj = Project.open(str(project))
    assert_every_drawn_path_is_settable(proj.load(proj.template_name(name)))


@pytest.mark.parametrize("name", LIBRARY)
def test_library_template_paths(name):
    proj = Project.open(str(ROOT / "examples" / "template_project"))
    assert_every_drawn_path_is_settable(proj.load(name, **LIBRARY_VARS.get(name, {})))


def test_a_key_with_dots_is_one_step(load):
    cfg = load(
        r"""
        rules: !dict
            norm\.weight$: {std: 1}
            a: {b: 1}
            a.b: 2
        """
    )
    cfg.set_value(r"rules.norm\.weight$.std", 3)
    cfg.set_value("rules.a.b", 4)  # one step per key first: a, then b
    assert cfg.build("rules") == {r"norm\.weight$": {"std": 3}, "a": {"b": 4}, "a.b": 2}
