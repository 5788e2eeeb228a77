"""nodes.py: the one node-kind -> tag table, labels, and how containers assemble."""

import pytest

from forgather.config.nodes import KINDS, TAGS, describe, yaml_tag


def test_every_tag_names_its_kind():
    assert {KINDS[tag] for tag in TAGS.values()} == set(TAGS)
    assert (KINDS["singleton"], KINDS["lambda"]) == ("singleton", "partial")


@pytest.mark.parametrize(
    ("text", "tag", "label"),
    [
        ("!call:os:getcwd@cwd", "!call:os:getcwd@cwd", "!call:os:getcwd@cwd"),
        ("!singleton:os:getcwd", "!call:os:getcwd", "!call:os:getcwd"),
        ("!lambda:max [1]", "!partial:max", "!partial:max"),
        ("!var lr", "!var", "!var lr"),
        ("!var:@rate lr", "!var:@rate", "!var lr@rate"),
        ("!tuple:@pair [1, 2]", "!tuple:@pair", "!tuple@pair"),
        ("!list [1]", "!list", "!list"),
        ("[1]", None, "!list"),  # untagged: no tag to write back
        ("{a: 1}", None, "!dict"),
        ("!dict:@opts {a: 1}", "!dict:@opts", "!dict@opts"),
        ("!dlist {a: 1}", "!dlist", "!dlist"),
    ],
)
def test_yaml_tag_and_label(load, text, tag, label):
    node = load(f"a: {text}\n").graph["a"]
    assert (yaml_tag(node), describe(node)) == (tag, label)


def test_containers_assemble_their_built_children(load):
    g = load("l: [a, b]\nt: !tuple [a, b]\nd: {1: a, k: b}\ndl: !dlist {x: a, y: b}\n").graph
    assert g["l"].assemble(["A", "B"]) == ["A", "B"]
    assert g["t"].assemble(["A", "B"]) == ("A", "B")
    assert g["d"].assemble(["A", "B"]) == {1: "A", "k": "B"}  # the original keys, not their text
    assert g["dl"].assemble(["A", "B"]) == ["A", "B"]
