"""``meta.yaml`` rendering: defaults from the workspace, overrides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgather.config import ConfigError
from forgather.project import ProjectError, load_meta

from .conftest import REPO_ROOT, TUTORIAL


def test_tutorial_meta():
    meta = load_meta(TUTORIAL)
    assert meta.name == "Project Composition"
    assert meta.default_config == "5_every_tag.yaml"
    assert meta.config_prefix == "configs"
    assert meta.workspace_root == REPO_ROOT
    assert meta.searchpath[:2] == [
        str(TUTORIAL / "templates"),
        str(REPO_ROOT / "forgather_workspace"),
    ]
    assert meta.searchpath[-1] == str(REPO_ROOT / "templatelib" / "base")
    assert meta.values["forgather_dir"] == str(REPO_ROOT)
    # Computed once, yet it follows a changed searchdir and cannot be changed through.
    meta.searchpath.append("/elsewhere")
    meta.searchdir.insert(0, "/first")
    assert meta.searchpath[0] == "/first" and "/elsewhere" not in meta.searchpath


def test_scaffolded_project_meta(project: Path, workspace: Path):
    meta = load_meta(project)
    assert (meta.name, meta.description) == ("Proj", "a test project")
    assert meta.default_config == "default.yaml"
    assert meta.searchdir == [str(project / "templates"), str(workspace / "forgather_workspace")]


def test_meta_may_extend_the_search_path_and_use_relative_dirs(project: Path):
    (project / "meta.yaml").write_text(
        '-- extends "meta_defaults.yaml"\n'
        "-- block searchdir_project\n"
        "== super()\n"
        '    - "extra"\n'
        "-- endblock searchdir_project\n"
        "-- block configs\n"
        "name: Renamed\n"
        "config_prefix: experiments\n"
        "-- endblock configs\n"
    )
    meta = load_meta(project)
    assert meta.name == "Renamed"
    assert meta.config_prefix == "experiments"
    assert meta.searchdir[:2] == [str(project / "templates"), str(project / "extra")]
    assert meta.default_config is None


def test_name_defaults_to_the_directory(project: Path):
    (project / "meta.yaml").write_text('-- extends "meta_defaults.yaml"\n')
    assert load_meta(project).name == "proj"


def test_not_a_project(tmp_path: Path):
    with pytest.raises(ProjectError, match="not a Forgather project"):
        load_meta(tmp_path)


def test_project_outside_any_workspace(tmp_path: Path):
    (tmp_path / "meta.yaml").write_text("name: lonely\n")
    with pytest.raises(ProjectError, match="no forgather_workspace/"):
        load_meta(tmp_path)


def test_error_in_meta_yaml_names_its_line(project: Path):
    (project / "meta.yaml").write_text(
        '-- extends "meta_defaults.yaml"\n-- block configs\nname: {{ nope }}\n-- endblock configs\n'
    )
    with pytest.raises(ConfigError) as info:
        load_meta(project)
    assert f"{project / 'meta.yaml'}:3" in str(info.value)


def test_searchdir_must_be_a_list(project: Path):
    (project / "meta.yaml").write_text("searchdir: templates\n")
    with pytest.raises(ProjectError, match="searchdir must be a list"):
        load_meta(project)
