"""Template loading and rendering: search path, globals, toyaml, StrictUndefined."""

import os

import pytest

from forgather.config import ConfigEnvironment, UndefinedVariableError


def test_first_directory_on_the_search_path_wins(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    for d, value in ((first, 1), (second, 2)):
        d.mkdir()
        (d / "a.yaml").write_text(f"value: {value}\n")
    (second / "b.yaml").write_text("-- extends 'a.yaml'\n")
    env = ConfigEnvironment([first, second])
    assert env.load("a.yaml").build("value") == 1
    assert env.load("b.yaml").build("value") == 1
    assert ("a.yaml", str(first)) in env.list_templates()
    assert ("b.yaml", str(second)) in env.list_templates()


def test_inheritance_blocks_and_super(templates):
    templates.write(
        "base.yaml",
        """
        main: !call:dict
            [args]
            a: 1
        """,
    )
    templates.write(
        "configs/child.yaml",
        """
        -- extends "base.yaml"
        [args]
        == super()
            b: 2
        """,
    )
    assert templates.env().load("configs/child.yaml").build("main") == {"a": 1, "b": 2}


def test_import_macros(templates):
    templates.write("macros.yaml", "-- macro pair(a, b)\n[{{ a }}, {{ b }}]\n-- endmacro\n")
    templates.write("main.yaml", "-- from 'macros.yaml' import pair\nmain: == pair(1, 2)\n")
    cfg = templates.env().load("main.yaml")
    assert cfg.build("main") == "== pair(1, 2)"  # prefixes apply only at line start
    templates.write("main2.yaml", "-- from 'macros.yaml' import pair\nmain: {{ pair(1, 2) }}\n")
    assert templates.env().load("main2.yaml").build("main") == [1, 2]


def test_template_variables_and_global_vars(templates):
    templates.write("a.yaml", "x: {{ x }}\ny: {{ g }}\n")
    cfg = templates.env(g="global").load("a.yaml", x=3)
    assert cfg.build() == {"x": 3, "y": "global"}


def test_strict_undefined(load):
    with pytest.raises(UndefinedVariableError, match="'missing' is undefined"):
        load("x: {{ missing }}\n")
    assert load("x: {{ missing | default(4) }}\n").build("x") == 4


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        ({"a": [1, 2]}, "{a: [1, 2]}"),
        ("yes", "'yes'"),
        ("plain", "plain"),
        (1.5, "1.5"),
        ([], "[]"),
    ],
)
def test_toyaml(load, value, expected):
    cfg = load("x: {{ v | toyaml }}\n", v=value)
    assert cfg.pp == f"x: {expected}\n"
    assert cfg.build("x") == value


def test_toyaml_default(load):
    assert load("x: {{ nothing | toyaml(default=None) }}\n").build("x") is None
    assert load("x: {{ nothing | toyaml([1]) }}\n").build("x") == [1]
    with pytest.raises(UndefinedVariableError):
        load("x: {{ nothing | toyaml }}\n")


def test_globals(load):
    cfg = load(
        """
        j: {{ joinpath('a', 'b') | toyaml }}
        n: {{ normpath('a/./b') | toyaml }}
        d: {{ dirname('/x/y.py') | toyaml }}
        b: {{ basename('/x/y.py') | toyaml }}
        s: {{ splitext('y.py') | list | toyaml }}
        m: {{ modname_from_path('/x/my_mod.py') | toyaml }}
        r: {{ repr('q') | toyaml }}
        h: {{ hostname | toyaml }}
        v: {{ versions.python | toyaml }}
        t: {{ isotime() | toyaml }}
        u: {{ utcfiletime() | toyaml }}
        c: {{ forgather_config_dir() | toyaml }}
        cache: {{ user_cache_dir('forgather') | toyaml }}
        home: {{ user_home_dir() | toyaml }}
        cwd: {{ getcwd() | toyaml }}
        a: {{ abspath('x') | toyaml }}
        """
    )
    built = cfg.build()
    assert built["j"] == os.path.join("a", "b")
    assert built["n"] == os.path.normpath("a/./b")
    assert (built["d"], built["b"], built["s"], built["m"]) == (
        "/x",
        "y.py",
        ["y", ".py"],
        "my_mod",
    )
    assert built["r"] == "'q'"
    assert built["v"].count(".") == 2
    assert built["t"][:2] == "20" and "T" in built["t"]
    assert built["c"].endswith("forgather") and built["cache"].endswith("forgather")
    assert built["home"] == os.path.expanduser("~") and built["cwd"] == os.getcwd()
    assert os.path.isabs(built["a"])


def test_versions_do_not_import_torch(load):
    import sys

    before = "torch" in sys.modules
    cfg = load("v: {{ versions.torch | toyaml }}\n")
    assert cfg.build("v")  # torch is installed in the test environment
    assert ("torch" in sys.modules) == before


def test_template_tree(templates):
    templates.write("base.yaml", "-- include 'part.yaml'\n-- import 'macros.yaml' as m\n")
    templates.write("part.yaml", "p: 1\n")
    templates.write("macros.yaml", "")
    templates.write("c.yaml", "-- extends 'base.yaml'\n")
    tree = templates.env().template_tree("c.yaml")
    assert tree.kind == "root"
    (base,) = tree.children
    assert (base.name, base.kind) == ("base.yaml", "extends")
    assert [(c.name, c.kind) for c in base.children] == [
        ("part.yaml", "include"),
        ("macros.yaml", "import"),
    ]


def test_preprocessed_sources(templates):
    templates.write("base.yaml", "-- set x = 1\na: {{ x }}\n")
    templates.write("c.yaml", "-- extends 'base.yaml'\n")
    sources = templates.env().preprocessed_sources("c.yaml")
    assert sources == {
        "c.yaml": "{% extends 'base.yaml' %}\n",
        "base.yaml": "{% set x = 1 %}\na: {{ x }}\n",
    }


def test_template_variables_may_be_called_name_and_text(templates):
    templates.write("a.yaml", "main: '{{ name }}'\n")
    assert templates.env().load("a.yaml", name="run-1").build("main") == "run-1"
    env = ConfigEnvironment([])
    assert env.load_from_string("main: '{{ text }}'\n", text="hello").build("main") == "hello"


def test_toyaml_of_a_value_seen_before_is_the_same_text():
    """toyaml remembers the text of plain values; what PyYAML writes differently
    for equal values (a shared list: an anchor; -0.0; True and 1) stays apart."""
    from forgather.config.template_globals import toyaml

    shared = [1, 2]
    assert toyaml([[1, 2], [1, 2]]) == "[[1, 2], [1, 2]]"
    assert toyaml([shared, shared]) == "[&id001 [1, 2], *id001]"
    assert toyaml([[1, 2], [1, 2]]) == "[[1, 2], [1, 2]]"
    assert (toyaml(0.0), toyaml(-0.0)) == ("0.0", "-0.0")
    assert (toyaml([True]), toyaml([1]), toyaml({"a": None})) == ("[true]", "[1]", "{a: null}")
    assert (toyaml({"b": 1, "a": 2}), toyaml({"a": 2, "b": 1})) == ("{b: 1, a: 2}", "{a: 2, b: 1}")
    looped: list = []
    looped.append(looped)
    assert toyaml(looped) == "&id001 [*id001]"


def test_a_changed_template_is_compiled_again_in_a_new_environment(
    templates, monkeypatch, tmp_path
):
    """Compiled templates are shared by the environments of one process (ls -r);
    the source's checksum keeps an edited template from running old code."""
    monkeypatch.setenv("FORGATHER_CACHE_DIR", str(tmp_path / "cache"))
    templates.write("base.yaml", "a: {{ 1 + 1 }}\n")
    templates.write("c.yaml", "-- extends 'base.yaml'\n")
    assert templates.env().load("c.yaml").pp == "a: 2\n"
    assert templates.env().load("c.yaml").pp == "a: 2\n"
    templates.write("base.yaml", "a: {{ 2 + 2 }}\n")
    assert templates.env().load("c.yaml").pp == "a: 4\n"
    monkeypatch.setenv("FORGATHER_CACHE_DIR", "/proc/forgather-read-only")  # no disk cache
    assert templates.env().load("c.yaml").pp == "a: 4\n"
