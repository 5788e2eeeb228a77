"""Workspace discovery, the template library's location, and the project walk."""

from __future__ import annotations

import os
from pathlib import Path

from forgather.project import (
    find_projects,
    find_workspace_root,
    forgather_dir,
    templatelib_dir,
    templatelib_searchdirs,
)

from .conftest import REPO_ROOT, TUTORIAL


def test_repository_root_is_a_workspace():
    assert find_workspace_root(TUTORIAL) == REPO_ROOT
    assert find_workspace_root(REPO_ROOT) == REPO_ROOT


def test_no_workspace_above_a_bare_directory(tmp_path: Path):
    assert find_workspace_root(tmp_path) is None


def test_nearest_workspace_wins(tmp_path: Path):
    (tmp_path / "forgather_workspace").mkdir()
    inner = tmp_path / "a" / "b"
    (inner / "forgather_workspace").mkdir(parents=True)
    (inner / "deep").mkdir()
    assert find_workspace_root(inner / "deep") == inner
    assert find_workspace_root(tmp_path / "a") == tmp_path


def test_templatelib_of_a_source_checkout():
    assert forgather_dir() == REPO_ROOT
    assert templatelib_dir() == REPO_ROOT / "templatelib"


def test_templatelib_searchdirs_put_base_last():
    dirs = templatelib_searchdirs()
    assert dirs[-1] == str(REPO_ROOT / "templatelib" / "base")
    names = [os.path.basename(d) for d in dirs[:-1]]
    assert names == sorted(names)


def _touch_project(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "meta.yaml").write_text("")


def test_find_projects_skips_outputs_envs_and_hidden_dirs(tmp_path: Path):
    for rel in [
        "a",
        "a/nested",
        "b/c",
        "output_models/x",
        ".hidden/p",
        "node_modules/p",
        "__pycache__/p",
        "a/templates/p",
        "venvdir/p",
    ]:
        _touch_project(tmp_path / rel)
    (tmp_path / "venvdir" / "pyvenv.cfg").write_text("home = /usr\n")
    found = [p.relative_to(tmp_path).as_posix() for p in find_projects(tmp_path)]
    assert found == ["a", "a/nested", "b/c"]


def test_public_names_resolve_lazily():
    import forgather.project as project

    assert sorted(project.__all__) == sorted(project._WHERE)
    for name in project.__all__:
        assert getattr(project, name) is not None
