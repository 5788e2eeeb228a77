"""``-D`` template variables and ``--set`` overrides, on nested keys and list items."""

from __future__ import annotations

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


def test_set_unknown_path_is_a_user_error():
    result = run_cli(*T, "construct", "--set", "main.nope.deeper=1")
    assert result.rc == 1
    assert result.err.startswith("forgather: error: ")
    assert "nope" in result.err
    assert "Traceback" not in result.err


def test_set_without_equals_is_an_error():
    result = run_cli(*T, "construct", "--set", "main.total")
    assert result.rc == 1
    assert "--set expects NAME=VALUE, got 'main.total'" in result.err


def test_define_is_parsed_as_yaml():
    args = ["-t", "4_dynamic_args.yaml", "-D", "greeting=Hey", "-D", "repeat=2", "construct"]
    result = run_cli(*T, *args)
    assert "'repeated': ['Hey', 'Hey']" in result.out
