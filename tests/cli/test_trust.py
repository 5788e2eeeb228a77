"""``--trust``: a config may import any module for that one command, and no longer.

Without it, a callable outside the import allowlist is a located ConfigError
that says how to allow it (docs/security.md).
"""

from __future__ import annotations

from pathlib import Path

from .conftest import run_cli

CONFIG = '-- extends "project.yaml"\n[main]\nmain: !call:shutil:which [ "python3" ]\n'


def _project(tmp_path: Path) -> Path:
    run_cli("ws", "init", "--name", "W", cwd=tmp_path)
    run_cli("ws", "project", "--name", "P", cwd=tmp_path)
    project = tmp_path / "p"
    (project / "templates" / "configs" / "outside.yaml").write_text(CONFIG)
    return project


def test_a_module_outside_the_allowlist_is_refused_with_how_to_allow_it(tmp_path: Path):
    project = _project(tmp_path)
    result = run_cli("-t", "outside.yaml", "construct", cwd=project)
    assert result.rc == 1 and "Traceback" not in result.err
    assert "outside.yaml:3" in result.err and "shutil" in result.err
    assert "--trust" in result.err and "allow_imports" in result.err


def test_trust_before_or_after_the_command_allows_it(tmp_path: Path):
    project = _project(tmp_path)
    for args in (["--trust", "-t", "outside.yaml", "construct"],
                 ["-t", "outside.yaml", "construct", "--trust"]):  # fmt: skip
        result = run_cli(*args, cwd=project)
        assert result.rc == 0, result.err
        assert "python3" in result.out


def test_one_trusted_shell_line_trusts_nothing_after_it(tmp_path: Path):
    project = _project(tmp_path)
    lines = "-t outside.yaml construct --trust\n-t outside.yaml construct\nexit\n"
    result = run_cli("-i", cwd=project, stdin=lines)
    assert "python3" in result.out  # the trusted line ran
    assert "shutil" in result.err and "--trust" in result.err  # the next one was refused
