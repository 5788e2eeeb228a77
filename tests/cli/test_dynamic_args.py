"""Dynamic args: declared by a config, shown in --help, reaching the templates."""

from __future__ import annotations

import argparse

import pytest

from forgather.cli.dynamic_args import (
    DynamicOptions,
    add_dynamic_args,
    dynamic_values,
    normalize_specs,
)
from forgather.cli.errors import CLIError

from .conftest import TUTORIAL, run_cli

DYN = ["-p", str(TUTORIAL), "-t", "4_dynamic_args.yaml"]


def test_options_are_shown_in_help():
    result = run_cli(*DYN, "pp", "--help")
    assert result.rc == 0
    assert "options declared by the config (dynamic_args)" in result.out
    assert "--greeting GREETING" in result.out
    assert "the greeting to use (default: Hello)" in result.out
    assert "--repeat REPEAT, -n REPEAT" in result.out


def test_values_reach_the_rendered_yaml():
    result = run_cli(*DYN, "pp", "--greeting", "Hi", "-n", "3")
    assert result.rc == 0, result.err
    assert "greeting: Hi\n" in result.out
    assert "repeated: [Hi, Hi, Hi]\n" in result.out


def test_absent_options_leave_the_template_default():
    result = run_cli(*DYN, "construct")
    assert "'repeated': ['Hello']" in result.out


def test_bad_value_is_a_usage_error():
    result = run_cli(*DYN, "construct", "--repeat", "many")
    assert result.rc == 2
    assert "argument --repeat/-n: invalid int value: 'many'" in result.err


def test_other_configs_do_not_have_the_options():
    result = run_cli("-p", str(TUTORIAL), "pp", "--greeting", "Hi")
    assert result.rc == 2
    assert "unrecognized arguments: --greeting Hi" in result.err


def test_help_still_works_when_the_config_is_broken(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("main: {{ undefined_thing }}\n")
    result = run_cli("-p", str(TUTORIAL), "-t", str(bad), "pp", "--help")
    assert result.rc == 0
    assert "the config's own options are unavailable" in result.out


# -- the spec conversion, in process -----------------------------------------------


def _parser_with(specs) -> tuple[argparse.ArgumentParser, DynamicOptions]:
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    return parser, add_dynamic_args(parser, normalize_specs(specs))


def test_types_and_mapping_form():
    parser, dests = _parser_with(
        {
            "lr": {"type": "float"},
            "use_cache": {"type": "bool"},
            "layers": {"names": ["--layers", "-l"], "type": "yaml"},
            "mode": {"choices": ["a", "b"]},
        }
    )
    assert dests.dests == ["lr", "use_cache", "layers", "mode"]
    args = parser.parse_args(["--lr", "1e-3", "--use-cache", "false", "-l", "[1, 2]"])
    assert dynamic_values(args, dests) == {"lr": 0.001, "use_cache": False, "layers": [1, 2]}


def test_store_true_action():
    parser, dests = _parser_with([{"names": "--fast", "action": "store_true", "help": "go"}])
    assert dynamic_values(parser.parse_args(["--fast"]), dests) == {"fast": True}
    # not given: the value its action implies, as the original Forgather passes it
    assert dynamic_values(parser.parse_args([]), dests) == {"fast": False}


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"type": "int"}], "needs option names"),
        ([{"names": "--x", "type": "complex"}], "unknown type 'complex'"),
        ("not a list", "must build to a list"),
        ([{"names": "--h"}, {"names": "--h"}], "--h is declared twice"),
    ],
)
def test_bad_specs(specs, message):
    with pytest.raises(CLIError, match=message):
        _parser_with(specs)
