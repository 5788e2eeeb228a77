"""Property: whatever text the loader is fed, every failure is a ConfigError."""

import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgather.config import ConfigError

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
]

TOKENS = [
    "{{", "}}", "{%", "%}", "{#", "#}", "-- ", "== ", "=> ", "<< ", ">> ", "## ", "[blk]", "[blk!]",
    "!call:", "!factory:", "!partial:", "!var ", "!dlist", "!tuple:@", "!meta:", "&a ", "*a", "*zz",
    "<<: ", ": ", "- ", "\n", "  ", "\t", "'", '"', "[", "]", "{", "}", "@", ":", "#---- x ----",
    "-- extends 'nope.yaml'", "-- include 'base.yaml'", "\x00", "\ue000", "é", "!!python/object:x",
    "---\n", "? ", "|", ">", "%", "~", "null", "arg0", "submodule_searchpath", "latent_args",
]


@st.composite
def mutated(draw):
    text = textwrap.dedent(draw(st.sampled_from(SEEDS))).lstrip("\n")
    for _ in range(draw(st.integers(1, 6))):
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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated())
def test_loader_only_raises_config_errors(templates, text):
    templates.write("base.yaml", "a: 1\n[body]\nb: 2\n")
    env = templates.env()
    try:
        cfg = env.load_from_string(text, v=1)
    except ConfigError as e:
        assert str(e)  # the message renders
        return
    assert isinstance(cfg.graph, dict)
