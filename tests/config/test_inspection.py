"""check, graph drawings and set_value: looking at and editing a graph without building."""

import pytest

from forgather.config import ConfigError, check, to_dot, to_mermaid

OBJ = "tests.config.objects"


def test_check_finds_bad_specs_and_arguments(load):
    cfg = load(
        f"""
        good: !call:{OBJ}:Layer {{width: 2}}
        typo: !call:{OBJ}:Layer {{widht: 2}}
        missing: !call:math:no_such_function
        partial: !partial:{OBJ}:Layer {{norm: 1}}
        """
    )
    problems = check(cfg)
    assert len(problems) == 2
    assert problems[0].startswith("<string>:2: wrong arguments") and "widht" in problems[0]
    assert problems[1].startswith("<string>:3: cannot import 'math:no_such_function'")
    assert check(load(f"a: !call:{OBJ}:Layer [1]\n")) == []


def test_check_builds_nothing(load):
    cfg = load(f"a: !call:{OBJ}:fails [1]\n")
    assert check(cfg) == []  # fails() would raise if called


def test_dot_and_mermaid(load):
    cfg = load("a: &s !call:dict {x: 1}\nb: !call:list [[*s]]\n")
    dot = to_dot(cfg)
    assert dot.startswith("digraph config {") and 'label="a = !call:dict"' in dot
    assert dot.count("!call:dict") == 1  # the shared node is drawn once
    mermaid = to_mermaid(cfg, "b")
    assert mermaid.startswith("flowchart LR") and "!call:list" in mermaid and "-->|0|" in mermaid


def test_set_value(load):
    cfg = load(
        """
        main: !call:dict
            args: !call:dict {lr: 0.1, sizes: [1, 2]}
            steps: !dlist {warmup: 1, train: 2}
        pos: !call:operator:sub [10, 1]
        """
    )
    cfg.set_value("main.args.lr", 0.5)
    cfg.set_value("main.args.sizes.1", 20)
    cfg.set_value("main.steps.train", 30)
    cfg.set_value("main.steps.0", 10)  # a !dlist item by position
    cfg.set_value("main.args.new", "x")
    cfg.set_value("pos.1", 4)
    assert cfg.build("main") == {
        "args": {"lr": 0.5, "sizes": [1, 20], "new": "x"},
        "steps": [10, 30],
    }
    assert cfg.build("pos") == 6
    with pytest.raises(ConfigError, match="no target 'nope'"):
        cfg.set_value("nope.x", 1)
    with pytest.raises(ConfigError, match="index '5' out of range"):
        cfg.set_value("main.args.sizes.5", 1)
    with pytest.raises(ConfigError, match="no such key"):
        cfg.set_value("main.nothing.x", 1)


def test_check_leaves_relative_specs_of_code_to_generate_alone(load):
    """The original Forgather's model templates hand a factory of `.module:Name` calls to a
    `!meta` code generator: those modules exist only in the generated code. The same SPEC
    reached by no meta call is still a problem."""
    cfg = load(
        f"""
        factory: &factory !partial:.layers:Block {{init: !partial:.init:normal []}}
        code: !meta:{OBJ}:Layer {{obj: *factory}}
        other: !partial:.layers:Block []
        """
    )
    problems = check(cfg)
    assert len(problems) == 1
    assert problems[0].startswith("<string>:3: cannot import '.layers:Block'")  # `other`
