"""Errors: one clear message with file:line, no traceback; exit codes 0/1/2."""

from __future__ import annotations

from pathlib import Path

from .conftest import TUTORIAL, run_cli


def _broken_project(tmp_path: Path) -> Path:
    run_cli("ws", "init", "--name", "W", cwd=tmp_path)
    run_cli("ws", "project", "--name", "P", cwd=tmp_path)
    project = tmp_path / "p"
    (project / "templates" / "configs" / "broken.yaml").write_text(
        '-- extends "project.yaml"\n[main]\nmain: {{ missing_variable }}\n'
    )
    return project


def test_config_error_names_file_and_line(tmp_path: Path):
    project = _broken_project(tmp_path)
    result = run_cli("-t", "broken.yaml", "pp", cwd=project)
    assert result.rc == 1
    assert result.out == ""
    assert result.err.startswith(f"forgather: error: {project}/templates/configs/broken.yaml:3: ")
    assert "missing_variable" in result.err
    assert "main: {{ missing_variable }}" in result.err  # the excerpt
    assert "Traceback" not in result.err


def test_traceback_flag_shows_it(tmp_path: Path):
    project = _broken_project(tmp_path)
    result = run_cli("--traceback", "-t", "broken.yaml", "pp", cwd=project)
    assert result.rc == 1
    assert "Traceback (most recent call last)" in result.err


def test_ls_lists_a_broken_config_as_parse_error(tmp_path: Path):
    project = _broken_project(tmp_path)
    result = run_cli("ls", cwd=project)
    assert result.rc == 0
    line = next(x for x in result.out.splitlines() if "broken.yaml" in x)
    assert line.startswith("    broken.yaml   PARSE ERROR: templates/configs/broken.yaml:3: ")
    assert "missing_variable" in line


def test_error_raised_by_user_code_keeps_its_type_and_notes(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("main: !call:int [ 'not a number' ]\n")
    result = run_cli("-p", str(TUTORIAL), "-t", str(config), "construct")
    assert result.rc == 1
    assert result.err.startswith("forgather: error: ValueError: invalid literal for int()")
    assert f"{config}:1" in result.err
    assert "--traceback" in result.err


def test_usage_errors_exit_2():
    assert run_cli("no-such-command").rc == 2
    assert run_cli().rc == 2
    assert run_cli("ls", "--no-such-option").rc == 2


def test_not_a_project_is_a_user_error(tmp_path: Path):
    result = run_cli("pp", cwd=tmp_path)
    assert result.rc == 1
    assert result.err == (
        f"forgather: error: {tmp_path} is not a Forgather project (no meta.yaml); "
        "pass -p DIR or create one with `forgather ws project`\n"
    )


def test_help_exits_0():
    result = run_cli("--help")
    assert result.rc == 0
    for name in (
        "ls",
        "index",
        "meta",
        "tlist",
        "pp",
        "trefs",
        "targets",
        "diff",
        "code",
        "construct",
        "check",
        "graph",
        "ws",
    ):
        assert f"\n  {name} " in result.out


def test_a_default_config_that_names_no_config(tmp_path: Path):
    project = _broken_project(tmp_path)
    meta = project / "meta.yaml"
    meta.write_text(meta.read_text().replace("default.yaml", "nosuch.yaml"))
    listing = run_cli("ls", cwd=project)
    assert listing.rc == 0
    assert "  * " not in listing.out
    assert "    (default_config 'nosuch.yaml' is not among them)" in listing.out
    result = run_cli("pp", cwd=project)
    assert result.rc == 1
    line = next(n for n, text in enumerate(meta.read_text().splitlines(), 1) if "nosuch" in text)
    assert result.err.startswith(
        f"forgather: error: {meta}:{line}: default_config 'nosuch.yaml' is not a config"
    )


def test_pp_debug_prints_the_sources_even_when_the_config_fails(tmp_path: Path):
    project = _broken_project(tmp_path)
    result = run_cli("-t", "broken.yaml", "pp", "-d", cwd=project)
    assert result.rc == 1
    assert "-- configs/broken.yaml --" in result.out
    assert "3: main: {{ missing_variable }}" in result.out
    assert "missing_variable" in result.err


def test_a_bad_dynamic_args_spec_names_its_line_and_help_still_works(tmp_path: Path):
    project = _broken_project(tmp_path)
    (project / "templates" / "configs" / "dyn.yaml").write_text(
        '-- extends "project.yaml"\n[dynamic_args]\ndynamic_args: !dlist\n'
        "    foo:\n        names: --foo\n        type: nosuchtype\n"
    )
    result = run_cli("-t", "dyn.yaml", "pp", cwd=project)
    assert result.rc == 1
    assert result.err.startswith(
        f"forgather: error: {project}/templates/configs/dyn.yaml:3: "
        "dynamic_args --foo: unknown type 'nosuchtype'"
    )
    help_text = run_cli("-t", "dyn.yaml", "pp", "--help", cwd=project)
    assert help_text.rc == 0
    assert "--annotate" in help_text.out
    assert "the config's own options are unavailable" in help_text.out
