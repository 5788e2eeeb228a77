"""provenance.py and template_blocks.py: where a value came from, and what it overrode."""

import pytest

from forgather.config import ConfigError, SourceLocation
from forgather.config.provenance import AnnotatedLine, Provenance

BASE = """\
a: 1
main: !call:dict
    [args]
    lr: 0.1
    momentum: 0.9
    [other]
    x: 1
"""
MID = """\
-- extends 'base.yaml'
[args]
== super()
    lr: 0.2
"""
TOP = """\
-- extends 'mid.yaml'
[args]
    lr: 0.3
    -- include 'inc.yaml'
"""


@pytest.fixture
def chain(templates):
    """base.yaml <- mid.yaml (super()) <- top.yaml (no super(), includes inc.yaml)."""
    templates.write("base.yaml", BASE)
    templates.write("mid.yaml", MID)
    templates.write("configs/top.yaml", TOP)
    (templates.root / "inc.yaml").write_text("    inc_key: 5\n")  # indented: not dedented
    return templates


def at(templates, name: str, line: int) -> tuple[str, int]:
    return str(templates.root / name), line


def where(loc: SourceLocation | None) -> tuple[str, int] | None:
    return None if loc is None else (loc.file, loc.line)


def test_the_line_that_set_a_value_and_the_blocks_it_overrode(chain):
    found = chain.env().load("configs/top.yaml").why("main.lr")
    assert isinstance(found, Provenance)
    assert found.value == 0.3
    assert where(found.location) == at(chain, "configs/top.yaml", 3)
    assert found.block == "args"
    assert [(d.file, d.line, d.calls_super) for d in found.block_chain] == [
        (*at(chain, "configs/top.yaml", 2), False),
        (*at(chain, "mid.yaml", 2), True),
        (*at(chain, "base.yaml", 3), False),
    ]
    text = str(found)
    assert text.startswith("main.lr = 0.3\n")
    assert f"set at {chain.root / 'configs/top.yaml'}:3" in text
    assert "no super(), holds this line" in text and "calls super()" in text


def test_a_value_kept_by_super_is_found_in_the_base(chain):
    found = chain.env().load("mid.yaml").why("main.momentum")
    assert where(found.location) == at(chain, "base.yaml", 5)
    assert found.location.chain == (at(chain, "mid.yaml", 1),)  # reached through the extends
    holding = [d for d in found.block_chain if d.holds(found.location.line)]
    assert [d.template for d in holding] == ["base.yaml"]
    assert found.block_chain[0].template == "mid.yaml" and found.block_chain[0].calls_super


def test_a_repeated_key_names_the_lines_it_overrode(chain):
    cfg = chain.env().load("mid.yaml")
    assert "lr: 0.1" in cfg.pp and "lr: 0.2" in cfg.pp  # super() kept the base's line
    found = cfg.why("main.lr")
    assert found.value == 0.2
    assert where(found.location) == at(chain, "mid.yaml", 4)
    assert [where(o) for o in found.overridden] == [at(chain, "base.yaml", 4)]
    assert f"overrides {chain.root / 'base.yaml'}:4: lr: 0.1" in str(found)


def test_a_value_from_an_included_template_names_the_include(chain):
    found = chain.env().load("configs/top.yaml").why("main.inc_key")
    assert where(found.location) == at(chain, "inc.yaml", 1)
    assert found.location.chain == (at(chain, "configs/top.yaml", 4),)
    assert found.block_chain == ()  # inc.yaml has no blocks
    assert "in file included from" in str(found)


def test_a_value_from_a_macro_names_the_call_not_a_made_up_extends(chain):
    chain.write("macros.yaml", "-- macro pair(a)\n[ {{ a }}, {{ a }} ]\n-- endmacro\n")
    chain.write(
        "configs/uses.yaml",
        "-- extends 'mid.yaml'\n-- from 'macros.yaml' import pair\n[args]\n    twice: {{ pair(3) }}\n",
    )
    found = chain.env().load("configs/uses.yaml").why("main.twice")
    assert where(found.location) == at(chain, "macros.yaml", 2)
    name, call = found.macro_call
    assert (name, where(call)) == ("pair", at(chain, "configs/uses.yaml", 4))
    report = str(found)
    assert f"  in macro pair, called at {call}" in report
    assert "extended by" not in report


def test_a_value_outside_any_block_and_a_whole_target(chain):
    cfg = chain.env().load("configs/top.yaml")
    found = cfg.why("a")
    assert (found.value, where(found.location), found.block_chain) == (
        1,
        at(chain, "base.yaml", 1),
        (),
    )
    target = cfg.why("main")
    assert where(target.location) == at(chain, "base.yaml", 2)
    assert str(target).startswith("main = !call:dict\n")


def test_a_set_value_says_so_and_what_it_replaced(chain):
    cfg = chain.env().load("mid.yaml")
    cfg.set_value("main.lr", 5)
    found = cfg.why("main.lr")
    assert found.command_line and found.location is None and found.value == 5
    assert [where(o) for o in found.overridden] == [
        at(chain, "base.yaml", 4),
        at(chain, "mid.yaml", 4),
    ]
    assert "set on the command line (--set)" in str(found)
    cfg.set_value("main.new_key", 1)  # a key --set added: no template line at all
    assert cfg.why("main.new_key").command_line


def test_a_path_that_names_nothing_is_a_config_error(chain):
    with pytest.raises(ConfigError, match="no such key or index 'nope'"):
        chain.env().load("mid.yaml").why("main.nope")


@pytest.mark.parametrize(
    ("text", "path", "value", "line"),
    [
        ("x: !call:f\n    arg1: b\n    arg0: a\n", "x.0", "a", 3),  # argN keys, by number
        ("x: !call:f\n    args: [a, b]\n    kwargs:\n        k: v\n", "x.k", "v", 4),
        ("x: !call:f\n    args:\n      - a\n      - b\n", "x.1", "b", 4),
        ('x: !call:len "hello"\n', "x.0", "hello", 1),  # a scalar is the one argument
        ("x: !call:f\n  - 1\n  - [2, 3]\n", "x.1.0", 2, 3),
        ("x: !dlist\n    a: 1\n    gone: null\n    b: 2\n", "x.1", 2, 4),  # by position
        ("x: !dlist\n    a: 1\n    b: 2\n    a: 3\n", "x.a", 3, 4),
        (".define: &d {k: 1}\nx: *d\n", "x.k", 1, 1),  # an alias: the anchor's line
        ("base: &b\n    k: 1\n    j: 2\nx:\n    <<: *b\n    j: 3\n", "x.k", 1, 2),
        ("base: &b\n    k: 1\n    j: 2\nx:\n    <<: *b\n    j: 3\n", "x.j", 3, 6),
        ("x:\n    rules:\n        norm.weight: 1\n", "x.rules.norm.weight", 1, 3),
        ("x: !var {name: v, default: 3}\n", "x", None, 1),
        ("x:\n    b: two\n    1: one\n", "x.1", "one", 3),  # a key named by its text
    ],
)
def test_paths_are_followed_as_the_loader_built_the_graph(load, text, path, value, line):
    cfg = load(text)
    found = cfg.why(path)
    if value is not None:
        assert found.value == value
    assert found.location is not None and found.location.line == line
    assert found.rendered_line == line


BLOCK_FORMS = {
    "brackets": ("[blk]\nk: 1\n", "[blk]\nk: 2\n"),
    "line statements": ("-- block blk\nk: 1\n-- endblock\n", "-- block blk\nk: 2\n-- endblock\n"),
    "jinja": ("{% block blk %}\nk: 1\n{% endblock %}\n", "{% block blk %}\nk: 2\n{% endblock %}\n"),
}


@pytest.mark.parametrize("form", BLOCK_FORMS)
def test_every_block_syntax_is_a_block(templates, form):
    base, child = BLOCK_FORMS[form]
    templates.write("b.yaml", "top: 0\n" + base)
    templates.write("c.yaml", "-- extends 'b.yaml'\n" + child)
    found = templates.env().load("c.yaml").why("k")
    assert (found.value, found.location.line, found.block) == (2, 3, "blk")
    assert [(d.template, d.line) for d in found.block_chain] == [("c.yaml", 2), ("b.yaml", 2)]


def test_the_innermost_of_nested_blocks(templates):
    templates.write("b.yaml", "[outer]\nm:\n    [inner]\n    k: 1\n    [more]\n    j: 2\n")
    templates.write("c.yaml", "-- extends 'b.yaml'\n[inner]\n== super()\n    k: 5\n")
    cfg = templates.env().load("c.yaml")
    found = cfg.why("m.k")
    assert found.value == 5 and found.block == "inner"
    assert [o.line for o in found.overridden] == [4]  # b.yaml's k, kept by super()
    assert [(d.template, d.calls_super) for d in found.block_chain] == [
        ("c.yaml", True),
        ("b.yaml", False),
    ]
    assert cfg.why("m.j").block == "more"  # [more] closed [inner]: a sibling, not a child


def test_blocks_of_a_sub_template(templates):
    templates.write(
        "lib.yaml",
        "#---- lib.base ----\n[part]\nk: 1\n#---- lib.child ----\n-- extends 'lib.base'\n[part]\nk: 2\n",
    )
    templates.write("main.yaml", "-- include 'lib.child'\n")
    found = templates.env().load("main.yaml").why("k")
    assert found.location.line == 7
    assert [(d.template, d.line) for d in found.block_chain] == [("lib.child", 6), ("lib.base", 2)]


def test_annotated_lines_name_each_rendered_lines_template_line(chain):
    cfg = chain.env().load("configs/top.yaml")
    lines = cfg.annotated_lines()
    assert [line.text for line in lines] == cfg.pp.rstrip("\n").split("\n")
    by_text = {line.text.strip(): where(line.location) for line in lines}
    assert by_text["a: 1"] == at(chain, "base.yaml", 1)
    assert by_text["lr: 0.3"] == at(chain, "configs/top.yaml", 3)
    assert by_text["inc_key: 5"] == at(chain, "inc.yaml", 1)
    assert all(isinstance(line, AnnotatedLine) for line in lines)


def test_a_string_template_is_traced_too(load):
    cfg = load("-- set n = 3\n[blk]\nn: {{ n }}\n")
    found = cfg.why("n")
    assert (found.location.file, found.location.line, found.block) == ("<string>", 3, "blk")


def test_lines_after_a_trimmed_region_keep_their_own_template_lines(templates):
    """The original Forgather's templates wrap blocks in `{% filter trim() %}`: the markers
    of the blank lines trim removed used to stay, and every later line was attributed to
    the line above it (`why` named the wrong template and line)."""
    templates.write(
        "base.yaml",
        "-- filter trim()\n\n-- block defs\n<< endblock defs\n\n\n-- endfilter\n\nmain: !call:dict\n    -- block args\n    << endblock args\n",
    )
    templates.write(
        "configs/top.yaml",
        "-- extends 'base.yaml'\n[defs]\n\n\n[args]\n    lr: 0.3\n    momentum: 0.9\n",
    )
    cfg = templates.env().load("configs/top.yaml")
    assert where(cfg.why("main.lr").location) == at(templates, "configs/top.yaml", 6)
    assert where(cfg.why("main.momentum").location) == at(templates, "configs/top.yaml", 7)
