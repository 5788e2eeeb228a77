"""``forgather -i``: commands, config selection and completion."""

from __future__ import annotations

from forgather.cli.main import main
from forgather.cli.shell import ForgatherShell

from .conftest import TUTORIAL, run_cli


def test_session_runs_commands_and_selects_configs():
    session = "targets\nconfig 4_dynamic_args.yaml\npp --greeting Yo\nbogus\nquit\n"
    result = run_cli("-p", str(TUTORIAL), "-i", stdin=session)
    assert result.rc == 0
    assert "meta\nmain\n" in result.out
    assert "repeated: [Yo]" in result.out
    assert "invalid choice: 'bogus'" in result.err  # reported, the shell goes on
    assert "forgather:project_composition [4_dynamic_args.yaml]> " in result.out


def test_completion_of_commands_and_config_names():
    shell = ForgatherShell(main, str(TUTORIAL))
    assert shell.completenames("co") == ["code", "construct", "control", "convert", "config"]
    assert shell.complete_config("3", "config 3", 7, 8) == ["3_sub_templates.yaml"]
    assert shell.completedefault("1", "-t 1", 3, 4) == ["1_inheritance.yaml"]
    assert shell.completedefault("2", "diff 1_inheritance.yaml 2", 24, 25) == ["2_includes.yaml"]
    assert shell.completedefault("x", "pp x", 3, 4) == []
