"""``init_workspace`` and ``create_project``: what they write and that it loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgather.project import Project, ProjectError, create_project, init_workspace, load_meta


def test_workspace_files(tmp_path: Path):
    ws = init_workspace(
        tmp_path, name="W", description="d", search_paths=[str(tmp_path / "shared")]
    )
    assert sorted(p.name for p in ws.iterdir()) == [
        "README.md",
        "base_directories.yaml",
        "meta_defaults.yaml",
    ]
    assert "# W" in (ws / "README.md").read_text()
    project = create_project(tmp_path / "p", name="P")
    meta = load_meta(project)
    assert meta.searchdir == [
        str(project / "templates"),
        str(ws),
        str(tmp_path / "shared"),
    ]


def test_forgather_dir_and_no_defaults(tmp_path: Path):
    init_workspace(tmp_path, name="W", forgather_dir_path="/opt/fg", no_defaults=True)
    project = create_project(tmp_path / "p", name="P")
    meta = load_meta(project)
    assert meta.values["forgather_dir"] == "/opt/fg"
    assert meta.searchdir == [str(project / "templates")]


def test_workspace_exists(workspace: Path):
    with pytest.raises(ProjectError, match="already exists"):
        init_workspace(workspace, name="again")


def test_project_from_the_template(project: Path):
    assert (project / "README.md").is_file()
    proj = Project(project_dir=project)
    assert proj.meta.name == "Proj"
    assert proj() == {
        "greeting": "Hello from a new Forgather project",
        "words": ["configs", "compose", "by", "inheritance"],
    }
    assert proj("meta")["config_name"] == "Default"


def test_project_prefix_and_default_config(workspace: Path):
    project = create_project(
        workspace / "q", name="Q", config_prefix="experiments", default_config="first.yaml"
    )
    assert (project / "templates" / "experiments" / "first.yaml").is_file()
    assert not (project / "templates" / "configs").exists()
    proj = Project(project_dir=project)
    assert proj.config_name == "first.yaml"
    assert proj.config_names() == ["first.yaml"]
    assert proj()["greeting"].startswith("Hello")


def test_project_name_with_quotes(workspace: Path):
    project = create_project(workspace / "r", name='Say "hi"', description="a: b")
    meta = load_meta(project)
    assert (meta.name, meta.description) == ('Say "hi"', "a: b")


def test_project_dir_not_empty(workspace: Path):
    (workspace / "full").mkdir()
    (workspace / "full" / "x").write_text("")
    with pytest.raises(ProjectError, match="not empty"):
        create_project(workspace / "full", name="F")


def test_fallback_when_examples_are_not_installed(workspace: Path, monkeypatch):
    # A wheel ships no examples/: the scaffold writes the same minimal project.
    import forgather.project.scaffold as scaffold

    monkeypatch.setattr(scaffold, "template_project_dir", lambda: workspace / "missing")
    project = create_project(workspace / "s", name="S")
    proj = Project(project_dir=project)
    assert proj("meta")["config_name"] == "Default"
    assert proj()["words"] == ["configs", "compose", "by", "inheritance"]


def test_fallback_texts_match_the_example_project():
    import forgather.project.scaffold as scaffold

    example = scaffold.template_project_dir() / "templates"
    assert (example / "project.yaml").read_text() == scaffold._PROJECT_YAML
    assert (example / "configs" / "default.yaml").read_text() == scaffold._DEFAULT_CONFIG
