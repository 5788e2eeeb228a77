"""Every project under examples/ works from a fresh clone: ``ls`` and ``pp``."""

from __future__ import annotations

import pytest

from forgather.project import find_projects

from .conftest import EXAMPLES, run_cli

PROJECTS = sorted(find_projects(EXAMPLES))


def test_examples_exist():
    names = {p.relative_to(EXAMPLES).as_posix() for p in PROJECTS}
    assert {"template_project", "tutorials/project_composition"} <= names


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_ls_and_pp(project):
    result = run_cli("ls", "--no-cache", cwd=project)
    assert result.rc == 0, result.err
    assert "PARSE ERROR" not in result.out
    result = run_cli("pp", cwd=project)
    assert result.rc == 0, result.err
