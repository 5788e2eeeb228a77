"""``meta.yaml`` rendering: defaults from the workspace, overrides, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgather.config import ConfigError
from forgather.project import Project, ProjectError, load_meta

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


@pytest.mark.parametrize(
    "line, message",
    [
        ("searchdir: templates", "searchdir: must be a list of directories, got str 'templates'"),
        ("searchdir: 5", "searchdir: must be a list of directories, got int 5"),
        ("default_config: 5", "default_config: must be a string, got int 5"),
        ("config_prefix: [1]", "config_prefix: must be a string, got list [1]"),
        ("name: {a: 1}", "name: must be a string, got dict {'a': 1}"),
        ("allow_imports: os", "allow_imports: must be a list of module names"),
        ("allow_imports: ['os', 'no way']", "allow_imports: 'no way' is not a module name"),
    ],
)
def test_a_value_of_the_wrong_type_is_an_error_at_its_line(project: Path, line, message):
    (project / "meta.yaml").write_text(
        f'-- extends "meta_defaults.yaml"\n-- block configs\n{line}\n-- endblock configs\n'
    )
    with pytest.raises(ProjectError) as info:
        load_meta(project)
    assert str(info.value).startswith(f"{project / 'meta.yaml'}:3: {message}")


def test_a_missing_default_config_is_an_error_at_its_line(project: Path):
    (project / "meta.yaml").write_text(
        '-- extends "meta_defaults.yaml"\n-- block configs\n'
        "default_config: nosuch.yaml\n-- endblock configs\n"
    )
    with pytest.raises(ProjectError) as info:
        Project(project_dir=project)
    assert str(info.value).startswith(
        f"{project / 'meta.yaml'}:3: default_config 'nosuch.yaml' is not a config of this project"
    )
    assert Project(project_dir=project, config="default.yaml").config_name == "default.yaml"
