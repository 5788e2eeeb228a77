"""``to_yaml`` and ``pp`` print YAML that loads back, as a template, to the same graph:
values holding Jinja or line syntax (``{{ name }}``, ``{# c #}``, ``-- x``, `` ## x``)
are written so that rendering leaves them alone."""

import math
import os

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from forgather.config import ConfigEnvironment, ConfigError, escape_template
from forgather.config.dump import to_yaml
from forgather.config.nodes import (
    TUPLE,
    CallNode,
    DictNode,
    ListNode,
    Node,
    VarNode,
)

EXAMPLES = int(os.environ.get("FORGATHER_FUZZ_EXAMPLES", "100"))

#: Pieces of text that mean something to Jinja, to the line syntax or to YAML.
PIECES = [
    "{{", "}}", "{%", "%}", "{#", "#}", "{{ name }}", "{# c #}", "{% if x %}", "-- ", "== ", "=> ",
    "<< ", ">> ", "## ", " ## ", "##", "[blk]", "[blk!]", "#---- x ----", "#", "%", "{", "}",
    "\n", "\r", "\r\n", "\t", "'", '"', "\\", "é", "\x85", "\u2028", "\ud800", "\x00", "\x07",
    "\ue000", "\ufeff", ": ", "- ", "? ", "&a", "*a", "!call:x", "~", "null", "1", "0x1", " ",
    "<<", "---", "...", "@",
]  # fmt: skip

# A lone surrogate cannot come from loading (libyaml refuses even the escape "\ud800").
text = st.lists(
    st.one_of(st.sampled_from([p for p in PIECES if p != "\ud800"]),
              st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=3)),
    max_size=6,
).map("".join)  # fmt: skip
scalars = st.one_of(
    text,
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
keys = st.one_of(text.filter(lambda k: not k.startswith(".")), st.integers())
keywords = text.filter(
    lambda k: (
        not k.startswith(".")
        and k not in ("args", "kwargs", "submodule_searchpath", "latent_args")
        and not (k.startswith("arg") and k[3:].isdigit())
    )
)
names = st.one_of(st.none(), st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True))


def _call(parts):
    kind, spec, args, kwargs, name = parts
    return CallNode(kind=kind, spec=spec, args=args, kwargs=kwargs, name=name)


def nodes(children):
    return st.one_of(
        st.lists(children, max_size=3).map(lambda items: ListNode(items=items)),
        st.lists(children, max_size=3).map(
            lambda items: ListNode(items=items, kind=TUPLE, explicit=True)
        ),
        st.dictionaries(keys, children, max_size=3).map(lambda items: DictNode(items=items)),
        st.tuples(
            st.sampled_from(["singleton", "factory", "partial"]),
            st.sampled_from(["dict", "operator:add", "math:sqrt", "os.path.join"]),
            st.lists(children, max_size=2),
            st.dictionaries(keywords, children, max_size=2),
            names,
        ).map(_call),
        st.tuples(text.filter(bool), children, st.booleans()).map(
            lambda t: VarNode(var=t[0], default=t[1] if t[2] else None, has_default=t[2])
        ),
    )


values = st.recursive(scalars, nodes, max_leaves=8)
graphs = st.dictionaries(
    text.filter(lambda k: not k.startswith(".")), values, min_size=1, max_size=3
)


def same(a, b, seen=None) -> bool:
    """Structural equality of two graphs or values (node kinds, SPECs, names, items)."""
    seen = {} if seen is None else seen
    if isinstance(a, dict) and isinstance(b, dict):  # a graph: target name -> value
        return list(a) == list(b) and all(same(a[k], b[k], seen) for k in a)
    if isinstance(a, Node) or isinstance(b, Node):
        if type(a) is not type(b) or a.kind != b.kind or a.name != b.name:
            return False
        if id(a) in seen:
            return seen[id(a)] is b
        seen[id(a)] = b
        if isinstance(a, VarNode):
            return (
                a.var == b.var
                and a.has_default == b.has_default
                and same(a.default, b.default, seen)
            )
        if isinstance(a, CallNode) and a.spec != b.spec:
            return False
        ka, kb = a.children(), b.children()
        return len(ka) == len(kb) and all(
            x[0] == y[0] and same(x[1], y[1], seen) for x, y in zip(ka, kb, strict=True)
        )
    if isinstance(a, float) and isinstance(b, float) and math.isinf(a):
        return a == b
    return type(a) is type(b) and a == b


@settings(max_examples=EXAMPLES, deadline=None)
@given(graph=graphs)
def test_to_yaml_loads_back_to_the_same_graph(graph):
    dumped = to_yaml(graph)
    assert escape_template(dumped) == dumped  # plain YAML: no line needed the fallback
    again = ConfigEnvironment([]).load_from_string(dumped)
    assert same(graph, again.graph)
    assert to_yaml(again.graph) == dumped


line_text = st.lists(
    st.one_of(st.sampled_from([p for p in PIECES if not set(p) & set("\r\n\x85\u2028\ud800\x00\x07\ufeff")]),
              st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=3)),
    max_size=6,
).map(lambda parts: "".join(parts).lstrip())  # fmt: skip

PP_TEMPLATE = """\
value: {{ value | toyaml }}
{{ key | toyaml }}: 1
block: |
  first
-- for line in lines
  {{ line }}
-- endfor
list:
-- for line in lines
  - {{ line | toyaml }}
-- endfor
"""


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    value=st.one_of(text, st.lists(text, max_size=3), st.dictionaries(text, text, max_size=2)),
    key=line_text.filter(bool),
    lines=st.lists(line_text, max_size=4),
)
def test_pp_loads_back_to_the_same_graph(value, key, lines):
    try:
        cfg = ConfigEnvironment([]).load_from_string(PP_TEMPLATE, value=value, key=key, lines=lines)
    except ConfigError:
        reject()  # the generated YAML itself may not parse (a key YAML cannot hold...)
    again = ConfigEnvironment([]).load_from_string(cfg.pp_template)
    assert same(cfg.graph, again.graph)
    assert again.pp == cfg.pp


@pytest.mark.parametrize(
    "value", ["{{ name }}", "{# c #}", "{% if x %}y{% endif %}", "-- set x = 1", "a ## b", "[blk]",
              "#---- sub ----", "== x", "multi\n-- line\n{{ x }}", "cr\rhere", "nul \x00 bel \x07"],
)  # fmt: skip
def test_jinja_syntax_in_values_survives_to_yaml_and_pp(value):
    cfg = ConfigEnvironment([]).load_from_string("main: {{ value | toyaml }}\n", value=value)
    assert cfg.build("main") == value
    for text in (cfg.to_yaml(), cfg.pp_template):
        assert ConfigEnvironment([]).load_from_string(text).build("main") == value


def test_pp_is_the_rendered_yaml_and_pp_template_escapes_only_lines_read_differently(load):
    cfg = load("a: 1\nb: '{{ \"{{\" }} x }}'\nc: 2\n")
    assert cfg.pp == "a: 1\nb: '{{ x }}'\nc: 2\n"
    assert cfg.pp_template.splitlines()[0::2] == ["a: 1", "c: 2"]
    assert cfg.pp_template.splitlines()[1] == "{{ 'b: \\x27\\x7b\\x7b x \\x7d\\x7d\\x27' }}"
