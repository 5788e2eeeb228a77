"""Every tag, node name, argument form and SPEC form of LANGUAGE.md, section 3."""

import re
import textwrap

import pytest

from forgather.config import ConfigEnvironment, YamlError
from forgather.config.nodes import (
    FACTORY,
    META,
    PARTIAL,
    SINGLETON,
    CallNode,
    DictNode,
    DListNode,
    ListNode,
    VarNode,
)


@pytest.mark.parametrize(
    ("tag", "kind"),
    [
        ("call", SINGLETON),
        ("singleton", SINGLETON),
        ("factory", FACTORY),
        ("partial", PARTIAL),
        ("lambda", PARTIAL),
        ("meta", META),
    ],
)
def test_call_tags(load, tag, kind):
    node = load(f"a: !{tag}:operator:add@plus [1, 2]\n").graph["a"]
    assert isinstance(node, CallNode)
    assert (node.kind, node.spec, node.name, node.args) == (kind, "operator:add", "plus", [1, 2])


def test_containers_and_names(load):
    g = load(
        """
        t: !tuple:@pair [1, 2]
        l: !list [a]
        d: !dict:@opts {x: 1}
        dl: !dlist {a: 1}
        plain_list: [1]
        plain_map: {k: v}
        """
    ).graph
    assert isinstance(g["t"], ListNode) and g["t"].kind == "tuple" and g["t"].name == "pair"
    assert isinstance(g["l"], ListNode) and g["l"].explicit
    assert isinstance(g["d"], DictNode) and g["d"].name == "opts"
    assert isinstance(g["dl"], DListNode)
    assert isinstance(g["plain_list"], ListNode) and not g["plain_list"].explicit
    assert isinstance(g["plain_map"], DictNode)
    assert load("t: !tuple [1, 2]\n").build("t") == (1, 2)


def test_var_forms(load):
    g = load("a: !var lr\nb: !var {name: lr, default: 0.1}\n").graph
    assert isinstance(g["a"], VarNode) and (g["a"].var, g["a"].has_default) == ("lr", False)
    assert (g["b"].var, g["b"].default, g["b"].has_default) == ("lr", 0.1, True)
    cfg = load("a: !var lr\nb: !var {name: lr, default: 0.1}\nc: !var {name: other, default: 3}\n")
    assert cfg.build(lr=0.5) == {"a": 0.5, "b": 0.5, "c": 3}


def test_argument_forms(load):
    cfg = load(
        """
        scalar: !call:len "hello"
        number: !call:abs -3
        empty: !call:dict
        seq: !call:max [1, 5, 2]
        kw: !call:dict {a: 1}
        argn: !call:operator:sub {arg1: 1, arg0: 10}
        argn_sorted: !call:max {arg10: 1, arg2: 7, arg0: 3}
        both: !call:sorted {args: [[3, 1, 2]], kwargs: {reverse: true}}
        """
    )
    assert cfg.build() == {
        "scalar": 5,
        "number": 3,
        "empty": {},
        "seq": 5,
        "kw": {"a": 1},
        "argn": 9,
        "argn_sorted": 7,
        "both": [3, 2, 1],
    }


def test_spec_forms(tmp_path):
    (tmp_path / "helper.py").write_text(
        "from .sibling import VALUE\n\ndef get(x=0):\n    return VALUE + x\n"
    )
    (tmp_path / "sibling.py").write_text("VALUE = 40\n")
    cfg = ConfigEnvironment([], source_dirs=[tmp_path]).load_from_string(
        textwrap.dedent(
            f"""
        builtin: !call:tuple [[1, 2]]
        dotted: !call:os.path.join [a, b]
        module: !call:os.path:join [a, b]
        attr: !call:collections:OrderedDict.fromkeys [[x]]
        file: !call:{tmp_path}/helper.py:get [1]
        relative: !call:.helper:get
            x: 2
            submodule_searchpath: [{tmp_path}]
        nested: !call:dict
            submodule_searchpath: {tmp_path}
            inner: !call:.sibling:VALUE.conjugate
        getattr: !call:getattr [!call:str [abc], upper]
        getitem: !call:getitem [{{a: 1}}, a]
        call: !call:call [!partial:max [1], 5]
        items: !call:items [{{a: 1}}]
        keys: !call:keys [{{a: 1}}]
        values: !call:values [{{a: 1}}]
        """
        )
    )
    built = cfg.build()
    assert built["builtin"] == (1, 2)
    assert built["dotted"] == built["module"] == "a/b"
    assert list(built["attr"]) == ["x"]
    assert built["file"] == 41 and built["relative"] == 42
    assert built["nested"] == {"inner": 40}
    assert built["getattr"]() == "ABC"
    assert built["getitem"] == 1 and built["call"] == 5
    assert (built["items"], built["keys"], built["values"]) == ([("a", 1)], ["a"], [1])


def test_loading_never_imports(tmp_path, monkeypatch):
    import sys

    (tmp_path / "forgather_import_probe.py").write_text("def make():\n    return 'made'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "forgather_import_probe", raising=False)
    env = ConfigEnvironment(
        [], allow_imports=[str(tmp_path)]
    )  # a directory: its modules are allowed
    cfg = env.load_from_string(
        "a: !call:forgather_import_probe:make\nb: !call:no_such_module_zz:X\n"
    )
    assert cfg.targets == ["a", "b"]  # loads fine; building b would fail
    assert "forgather_import_probe" not in sys.modules
    assert cfg.build("a") == "made"
    assert sys.modules.pop("forgather_import_probe").make() == "made"  # building imported it


def test_dot_names_are_not_targets_but_anchors_work(load):
    cfg = load(
        """
        .define: &x !call:dict {a: 1}
        .define: &y [1]
        main: !call:dict
            .local: &z 5
            value: *z
            shared: *x
        other: *y
        """
    )
    assert cfg.targets == ["main", "other"]
    assert cfg.build("main") == {"value": 5, "shared": {"a": 1}}


def test_dlist_override_and_removal(load):
    cfg = load(
        """
        a: !dlist
            first: 1
            second: 2
            third: 3
            first: 10
            second: ~
        empty: !dlist {null: ~}
        """
    )
    assert cfg.build() == {"a": [10, 3], "empty": []}


def test_duplicate_keys_later_wins(load):
    assert load("a: 1\nb: 2\na: 3\n").build() == {"a": 3, "b": 2}


def test_anchors_are_shared_nodes(load):
    cfg = load("a: &n !call:list [[1]]\nb: *n\nc: !call:list [[1]]\n")
    assert cfg.graph["a"] is cfg.graph["b"]
    built = cfg.build()
    assert built["a"] is built["b"] and built["a"] is not built["c"]


def test_merge_keys(load):
    cfg = load(
        """
        .base: &base {a: 1, b: 2}
        merged: !call:dict
            <<: *base
            b: 3
        """
    )
    assert cfg.build("merged") == {"a": 1, "b": 3}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !nope 1\n", "unknown tag !nope"),
        ("a: !cal:dict\n", re.escape("unknown tag !cal:dict (did you mean !call:dict? expected !")),
        ("a: !dict:os {x: 1}\n", re.escape("unknown tag !dict:os (!dict takes no :SPEC)")),
        ("a: !call:bad-spec\n", "malformed SPEC"),
        ("a: !call:os:path:join\n", "malformed SPEC"),
        ("a: !var\n", "!var needs a variable name"),
        ("a: !list {x: 1}\n", "!list needs a sequence"),
        ("a: !dict [1]\n", "!dict needs a mapping"),
        ("- 1\n", "root must be a mapping"),
        ("a: 1\n---\nb: 2\n", "single document"),
        ("a: !call:x@9bad\n", "bad node name"),
        ("? [1]\n: 2\n", "keys must be scalars"),
        ("1: 2\n", "target names must be strings"),
        ("a: !!python/object:os.system x\n", "unsupported tag"),
    ],
)
def test_malformed_yaml_nodes(load, text, message):
    with pytest.raises(YamlError, match=message):
        load(text)


def test_an_anchor_may_be_redefined(load):
    cfg = load("a: &x 1\nb: *x\na2: &x 2\nc: *x\n")
    assert cfg.build() == {"a": 1, "b": 1, "a2": 2, "c": 2}


def _shape(node):
    """A composed node as plain tuples: tag, value or children, style and marks."""
    import yaml

    marks = (node.start_mark.line, node.start_mark.column, node.end_mark.line, node.end_mark.column)
    if isinstance(node, yaml.ScalarNode):
        return (node.tag, node.value, node.style or None, marks)
    if isinstance(node, yaml.MappingNode):
        children = [(_shape(k), _shape(v)) for k, v in node.value]
    else:
        children = [_shape(v) for v in node.value]
    return (node.tag, children, node.flow_style, marks)


def test_a_redefined_anchor_composes_alike_in_c_and_python():
    import yaml

    from forgather.config import yaml_graph

    if yaml_graph._FAST_REDEFINING is None:
        pytest.skip("PyYAML without libyaml")
    text = textwrap.dedent(
        """\
        opt: &opt !call:torch.optim:AdamW {lr: 1.0e-3, betas: [0.9, 0.95]}
        first: *opt
        opt2: &opt !partial:torch.optim:SGD
            lr: "0.1"
            nesterov: yes
        second: [*opt, 'x', ~, 2024-01-01]
        """
    )
    c_nodes = yaml_graph.compose(text)  # libyaml's own composer would refuse the second &opt
    python_nodes = yaml.compose(text, Loader=yaml_graph._RedefiningLoader)
    assert _shape(c_nodes) == _shape(python_nodes)
    assert c_nodes.value[3][1].value[0] is c_nodes.value[2][1]  # the newest &opt
    # "&x" twice in strings only: the redefining composer is used, to the same effect.
    text = "a: '&x'\nb: \"&x\"\nc: &y [1, &z 2]\nd: *y\n"
    assert _shape(yaml_graph.compose(text)) == _shape(yaml.compose(text, Loader=yaml.CSafeLoader))
