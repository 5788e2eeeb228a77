"""Property: whatever text the loader is fed, every failure of every operation on it
is a ConfigError (or, from building, an exception the callee raised, noted with the
node's path).

Mutations of a few seed configs, including hostile ones: lone surrogates, anchors
that contain themselves, reaches out of the Jinja sandbox, SPECs the allowlist
refuses. ``FORGATHER_FUZZ_EXAMPLES`` sets how many cases (300 in the suite), e.g.
``FORGATHER_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest tests/config/test_fuzz.py``.
"""

import os
import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgather.config import ConfigEnvironment, ConfigError, check, to_dot, to_mermaid

EXAMPLES = int(os.environ.get("FORGATHER_FUZZ_EXAMPLES", "300"))

SEEDS = [
    """
    -- extends 'base.yaml'
    -- set ns = namespace(x=1)
    [body]
    == super()
        b: !call:dict {x: {{ ns.x }}}
    """,
    """
    .define: &a !call:dict {a: 1}
    main: !factory:list
        - *a
        - !partial:max@m [1, 2]
        - !var {name: v, default: 3}
    t: !tuple:@pair [1, 2]
    d: !dlist {x: 1, x: ~, y: [1]}
    m: {<<: {a: 1}, b: 2}
    """,
    """
    #---- sub.one ----
    one: 1
    #---- sub.two ----
    -- include 'sub.one'
    two: {{ [1, 2] | toyaml }}
    """,
    # every kind of node, and values that look like Jinja or line syntax
    """
    .define: &s !call:collections:Counter [abc]
    main: !call:dict
        a: *s
        b: !partial:operator:add [1]
        c: !factory:list [[*s]]
        d: !call:getattr [abc, upper]
        e: !call:call [!partial:max [1], 5]
        f: !meta:len [[1, 2]]
        g: "{{ '{{' }} name }}"
        h: '-- x # y'
        i: !var {name: v, default: {{ '{#' | toyaml }}}
    dynamic_args: !dlist {x: {names: --x, type: int}}
    meta: !dict:@meta {config_name: n}
    """,
    # anchors that contain themselves, and a partial that may
    """
    a: &a [1, *a]
    b: &b {x: *b, y: [*b]}
    c: &c !call:list [[*c]]
    p: &p !partial:max [1, *p]
    v: &v !var {name: v, default: [*v]}
    """,
    # reaching out of the sandbox
    """
    -- set g = cycler.__init__.__globals__
    a: {{ lipsum.__globals__.os.getcwd() }}
    b: {{ ''.__class__.__mro__ }}
    c: {{ 2 ** 10 }} {{ 'ab' * 3 }}
    d: {{ joinpath('a', 'b') | toyaml }}
    """,
    # SPECs the allowlist refuses, next to allowed ones
    """
    a: !call:os:system [true]
    b: !call:subprocess:run [[true]]
    c: !call:eval ['1']
    d: !call:math:sqrt [4.0]
    e: !call:getattr [abc, __class__]
    f: !call:os.path:os.getcwd
    g: !call:.os:getcwd
        submodule_searchpath: /usr/lib
    h: !call:operator:attrgetter [__globals__]
    """,
    # lone surrogates and other characters YAML cannot hold
    """
    a: "{{ '\\ud800' }}"
    b: "\\ud800"
    c: "{{ '\\x07' }}"
    d: 'é'
    """,
]

TOKENS = [
    "{{", "}}", "{%", "%}", "{#", "#}", "-- ", "== ", "=> ", "<< ", ">> ", "## ", "[blk]", "[blk!]",
    "!call:", "!factory:", "!partial:", "!var ", "!dlist", "!tuple:@", "!meta:", "&a ", "*a", "*zz",
    "<<: ", ": ", "- ", "\n", "  ", "\t", "'", '"', "[", "]", "{", "}", "@", ":", "#---- x ----",
    "-- extends 'nope.yaml'", "-- include 'base.yaml'", "\x00", "\ue000", "é", "!!python/object:x",
    "---\n", "? ", "|", ">", "%", "~", "null", "arg0", "submodule_searchpath", "latent_args",
    # hostile pieces
    "\ud800", "\udfff", "\\ud800", "&b ", "*b", "[*a]", "{x: *a}", ".__class__", ".__globals__",
    ".__init__", "cycler", "lipsum", "os:system", "subprocess:run", "builtins:eval", "eval",
    "__import__", "!call:getattr ", "!call:call ", "getattr", "**", " * 99999999", "range(99999999)",
    "-- include '../x.yaml'", "-- include '/etc/hostname'", "!call:/etc/x.py:y", ".os:getcwd",
]  # fmt: skip


@st.composite
def mutated(draw):
    text = textwrap.dedent(draw(st.sampled_from(SEEDS))).lstrip("\n")
    for _ in range(draw(st.sampled_from([0, 1, 1, 2, 2, 3, 4, 6]))):  # few: more cases load
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        if action == "insert":
            token = draw(st.one_of(st.sampled_from(TOKENS), st.text(max_size=4)))
            text = text[:position] + token + text[position:]
        elif action == "delete":
            end = min(len(text), position + draw(st.integers(1, 8)))
            text = text[:position] + text[end:]
        else:
            end = min(len(text), position + draw(st.integers(1, 30)))
            text = text[:position] + text[position:end] + text[position:]
    return text


def _acceptable(error: BaseException) -> bool:
    """A ConfigError, or what a callee raised while building (it carries our note)."""
    if isinstance(error, ConfigError):
        str(error).encode("utf-8")  # the message renders and prints anywhere
        return bool(str(error))
    return any("while building" in note for note in getattr(error, "__notes__", []))


def _attempt(operation, *args):
    try:
        return operation(*args)
    except Exception as error:
        if not _acceptable(error):
            raise
        return None


def exercise(cfg) -> None:
    """Every operation of the Python API, as the commands use them."""
    env = ConfigEnvironment([])
    assert isinstance(cfg.graph, dict)
    cfg.pp.encode("utf-8")  # printable: no lone surrogate
    dumped = cfg.to_yaml()
    assert env.load_from_string(dumped).to_yaml() == dumped  # to_yaml loads back
    assert env.load_from_string(cfg.pp_template).to_yaml() == dumped  # and so does pp
    _attempt(check, cfg)
    _attempt(to_dot, cfg)
    _attempt(to_mermaid, cfg)
    for target in cfg.targets:
        _attempt(cfg.to_python, target)
        _attempt(cfg.build_data, target)
        _attempt(lambda t=target: cfg.build(t, v=1))
    for target in cfg.targets:  # last: it changes the graph
        _attempt(cfg.set_value, f"{target}.0", "{{ x }}")


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=mutated(), as_file=st.booleans())
def test_every_operation_only_raises_config_errors(templates, tmp_path, monkeypatch, text, as_file):
    monkeypatch.setenv("FORGATHER_CACHE_DIR", str(tmp_path / "cache"))  # compiled templates
    templates.write("base.yaml", "a: 1\n[body]\nb: 2\n")
    env = templates.env()
    try:
        if as_file and text == text.encode("utf-8", "replace").decode("utf-8"):
            (templates.root / "fuzz.yaml").write_text(text, encoding="utf-8")
            _attempt(env.template_tree, "fuzz.yaml")
            _attempt(env.preprocessed_sources, "fuzz.yaml")
            cfg = env.load("fuzz.yaml", v=1)
        else:
            cfg = env.load_from_string(text, v=1)
    except ConfigError as e:
        assert str(e).encode("utf-8")  # the message renders and prints anywhere
        return
    exercise(cfg)
