"""``-D`` template variables and ``--set`` overrides, on nested keys and list items."""

from __future__ import annotations

import pytest

from .conftest import TUTORIAL, run_cli

T = ["-p", str(TUTORIAL)]


def test_set_nested_key_and_list_item():
    result = run_cli(
        *T,
        "--set", "main.point.z=7",
        "--set", "main.names.1=hopper",
        "construct",
        "--set", "main.options.level=[1, 2]",
    )  # fmt: skip
    assert result.rc == 0, result.err
    assert "'point': {'x': 0, 'y': 0, 'z': 7}" in result.out
    assert "'names': ['ada', 'hopper']" in result.out
    assert "'options': {'verbose': True, 'level': [1, 2]}" in result.out


def test_set_shows_in_pp_and_code():
    result = run_cli(*T, "pp", "--set", "main.total=42")
    assert result.rc == 0, result.err
    assert "total: 42" in result.out
    result = run_cli(*T, "code", "--set", "main.total=42")
    assert "'total': 42" in result.out


def test_a_misspelt_keyword_from_set_says_it_came_from_the_command_line():
    result = run_cli("-p", str(TUTORIAL), "--set", "main.third.denominatr=5", "construct")
    assert result.rc == 1
    assert "got an unexpected keyword argument 'denominatr'" in result.err
    assert result.err.endswith(
        "  'denominatr' was set on the command line (--set main.third.denominatr=...)\n"
    )


def test_set_unknown_path_is_a_usage_error():
    result = run_cli(*T, "construct", "--set", "main.nope.deeper=1")
    assert result.rc == 2  # a bad option value: a sweep stops instead of repeating it
    assert result.err.startswith("forgather: error: ")
    assert "nope" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    "option, value", [("--set", "main.total"), ("-D", "greeting"), ("--var", "x")]
)
def test_an_assignment_without_equals_is_a_usage_error(option, value):
    words = [option, value, "construct"] if option != "--var" else ["construct", option, value]
    result = run_cli(*T, *words)
    assert result.rc == 2
    assert result.err == f"forgather: error: {option} expects NAME=VALUE, got {value!r}\n"


def test_define_is_parsed_as_yaml():
    args = ["-t", "4_dynamic_args.yaml", "-D", "greeting=Hey", "-D", "repeat=2", "construct"]
    result = run_cli(*T, *args)
    assert "'repeated': ['Hey', 'Hey']" in result.out


# YAML 1.2 core: what each override text becomes (YAML 1.1 would read no/yes/on/off as
# booleans, 1_000 as 1000, and 0o17 and 3e-4 as strings).
YAML12_VALUES = {
    "no": "no", "yes": "yes", "on": "on", "off": "off", "0o17": 15, "1_000": "1_000",
    "true": True, "False": False, "null": None, "~": None, "3e-4": 0.0003, "017": 17,
    "0x1f": 31, ".inf": float("inf"), "2024-01-01": "2024-01-01",
}  # fmt: skip


def test_override_values_are_yaml_1_2_core():
    from forgather.cli.values import parse_yaml_value

    assert {text: parse_yaml_value(text) for text in YAML12_VALUES} == YAML12_VALUES
    assert parse_yaml_value("[no, 1_000, {a: off}]") == ["no", "1_000", {"a": "off"}]
    assert parse_yaml_value(".nan") != parse_yaml_value(".nan")  # NaN


def test_set_and_define_read_yaml_1_2_core():
    keys = {text: f"k{i}" for i, text in enumerate(YAML12_VALUES)}
    sets = [w for text, key in keys.items() for w in ("--set", f"main.{key}={text}")]
    result = run_cli(*T, "-t", "4_dynamic_args.yaml", "-D", "greeting=no", "construct", *sets)
    assert result.rc == 0, result.err
    assert "'repeated': ['no']" in result.out
    for text, key in keys.items():
        assert f"'{key}': {YAML12_VALUES[text]!r}" in result.out, (text, result.out)


def test_a_define_that_is_not_a_variable_name_is_a_usage_error():
    result = run_cli(*T, "-D", "a-b=1", "pp")
    assert (result.rc, result.err) == (
        2,
        "forgather: error: -D a-b: not a variable name (letters, digits and _)\n",
    )
