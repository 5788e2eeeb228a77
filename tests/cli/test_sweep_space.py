"""``forgather.cli.sweep_space``: parsing ``--grid``/``--set-grid``, and the trials a space makes."""

from __future__ import annotations

import math

import pytest

from forgather.cli.errors import CLIError
from forgather.cli.sweep_space import (
    assignment,
    format_value,
    grid_trials,
    parse_dimension,
    random_trials,
    split_items,
)
from forgather.cli.values import parse_yaml_value


def test_values_are_read_like_dash_d_values():
    dim = parse_dimension("x=1e-3, 8, no, true, null, [1,2], {a: 1}, 'a,b'", "define")
    assert dim.choices == (0.001, 8, "no", True, None, [1, 2], {"a": 1}, "a,b")
    assert dim.flag == "-D" and parse_dimension("main.a=1", "set").flag == "--set"


def test_split_items_respects_brackets_and_quotes():
    assert split_items('1, [2, 3], {a: 4, b: 5}, "6,7", f(8, 9)') == [
        "1", "[2, 3]", "{a: 4, b: 5}", '"6,7"', "f(8, 9)",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "value",
    [0.001, 3e-4, 1e16, 8, -3, True, False, None, "adamw", "no", "true", "3", "a b", " x",
     "a,b", "", math.inf, -math.inf, [1, "two", [3.5]], {"k": "v", "n": 2}, "é"],
)  # fmt: skip
def test_format_value_reads_back_as_itself(value):
    assert parse_yaml_value(format_value(value)) == value


def test_format_value_is_plain_where_it_can_be():
    assert [format_value(v) for v in (1e-3, 8, "adamw", [1, 2])] == [
        "0.001",
        "8",
        "adamw",
        "[1, 2]",
    ]
    assert format_value("true") == '"true"' and math.isnan(parse_yaml_value(format_value(math.nan)))
    assert assignment(parse_dimension("lr=1", "define"), 0.5) == ["-D", "lr=0.5"]


def test_grid_is_every_combination_last_dimension_fastest():
    a = parse_dimension("a=1,2", "define")
    b = parse_dimension("main.b=x,y,z", "set")
    trials = grid_trials([a, b])
    assert trials[:4] == [{"a": 1, "main.b": "x"}, {"a": 1, "main.b": "y"},
                          {"a": 1, "main.b": "z"}, {"a": 2, "main.b": "x"}]  # fmt: skip
    assert len(trials) == 6


def test_linspace_and_logspace_are_lists():
    assert parse_dimension("x=linspace(0,1,3)", "define").choices == (0.0, 0.5, 1.0)
    dim = parse_dimension("lr=logspace(1e-4,1e-2,3)", "define")
    assert dim.choices == (0.0001, 0.001, 0.01) and dim.log_scale


def test_random_sample_of_a_list_space_has_no_repeats_and_keeps_its_prefix():
    dims = [parse_dimension("a=1,2,3", "define"), parse_dimension("b=4,5,6", "define")]
    five = random_trials(dims, 5, seed=1)
    assert len({tuple(t.items()) for t in five}) == 5
    assert random_trials(dims, 3, seed=1) == five[:3]
    assert random_trials(dims, 5, seed=2) != five
    assert len(random_trials(dims, 100, seed=1)) == 9  # at most the whole grid


def test_random_ranges_stay_in_bounds_and_are_reproducible():
    dims = [
        parse_dimension("lr=loguniform(1e-4,1e-2)", "define"),
        parse_dimension("wd=uniform(0,0.3)", "set"),
        parse_dimension("layers=int(2,4)", "define"),
        parse_dimension("width=logint(16,256)", "define"),
        parse_dimension("act=relu,gelu", "define"),
    ]
    trials = random_trials(dims, 20, seed=0)
    assert trials == random_trials(dims, 20, seed=0)
    assert random_trials(dims, 30, seed=0)[:20] == trials  # more trials later keep these
    for t in trials:
        assert 1e-4 <= t["lr"] <= 1e-2 and 0 <= t["wd"] <= 0.3
        assert t["layers"] in (2, 3, 4) and 16 <= t["width"] <= 256 and t["act"] in ("relu", "gelu")
        assert t["lr"] == float(f"{t['lr']:.4g}")  # 4 significant digits
    assert len({t["lr"] for t in trials}) > 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr", "expects NAME=V1,V2"),
        ("lr=", "expects NAME=V1,V2"),
        ("lr=1,,2", "an empty value"),
        ("lr=1e-3,0.001", "listed twice"),
        ("lr=loguniform(0,1)", "LOW > 0"),
        ("lr=uniform(2,1)", "LOW <= HIGH"),
        ("lr=uniform(1)", "expected uniform(LOW,HIGH)"),
        ("n=int(1.5,3)", "must be integers"),
        ("n=linspace(0,1,0)", "positive integer"),
    ],
)
def test_mistakes_are_one_line_errors(text, message):
    with pytest.raises(CLIError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_dimension(text, "define")


def test_a_range_has_no_grid():
    with pytest.raises(CLIError, match=r"add --random N or --optuna N"):
        grid_trials([parse_dimension("lr=uniform(0,1)", "define")])
