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


def test_commands_that_read_no_config_run_with_a_config_selected(tmp_path):
    """They refuse -t/-D given to them; the shell's selected config and -D stay off them."""
    session = "config 4_dynamic_args.yaml\ncontrol list\nupdate-vocab nowhere out\nquit\n"
    result = run_cli("-p", str(TUTORIAL), "-D", "x=1", "-i", stdin=session,
                     env={"FORGATHER_STATE_DIR": str(tmp_path)})  # fmt: skip
    assert result.rc == 0
    assert "JOB  CONFIG  STEP  STATUS  AGE" in result.out
    assert "reads no config" not in result.err
    assert "nowhere" in result.err  # update-vocab ran, and said the source is missing


def test_completion_of_commands_and_config_names():
    shell = ForgatherShell(main, str(TUTORIAL))
    assert shell.completenames("co") == [
        "code", "construct", "control", "convert", "config", "configs", "commands"
    ]  # fmt: skip
    assert shell.complete_config("3", "config 3", 7, 8) == ["3_sub_templates.yaml"]
    assert shell.completedefault("1", "-t 1", 3, 4) == ["1_inheritance.yaml"]
    assert shell.completedefault("2", "diff 1_inheritance.yaml 2", 24, 25) == ["2_includes.yaml"]
    assert shell.completedefault("x", "pp x", 3, 4) == []


def test_the_original_shells_commands(tmp_path):
    editor = tmp_path / "editor.sh"  # an "editor" that records the file it is given
    editor.write_text(f'#!/bin/sh\necho "$1" > {tmp_path / "edited"}\n')
    editor.chmod(0o755)
    examples = TUTORIAL.parent
    session = (
        f"pwd\ncd {TUTORIAL.name}\npwd\nconfigs\nconfig 2_includes.yaml\nedit\n"
        "debug\nconstruct --target nope\ncommands\nhelp nosuch\nproject show\ncd nowhere\nquit\n"
    )
    result = run_cli("-p", str(examples), "-i", stdin=session, env={"EDITOR": str(editor)})
    assert result.rc == 0, result.err
    assert f"> {examples}\n" in result.out and f"> {TUTORIAL}\n" in result.out
    assert "  * 5_every_tag.yaml" in result.out  # configs
    edited = (tmp_path / "edited").read_text().strip()
    assert edited == str(TUTORIAL / "templates" / "configs" / "2_includes.yaml")
    assert "tracebacks on" in result.out
    assert "Traceback (most recent call last)" in result.err  # debug: the error's traceback
    assert "  construct " in result.out  # commands
    assert "no command 'nosuch'; the commands are:" in result.out
    assert "name: Project Composition" in result.out  # project show: the command
    assert "error: no directory 'nowhere'" in result.out
    unknown = run_cli(
        "-p", str(TUTORIAL), "-i", stdin="config nosuch.yaml\nconfig 2_includes\nquit\n"
    )
    assert "error: no config 'nosuch.yaml' in this project (configs lists them)" in unknown.out
    assert "forgather:project_composition [2_includes]> " in unknown.out
