"""The ``Project`` API on the tutorial project and on scaffolded projects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import forgather
from forgather.config import ConfigError
from forgather.project import Project, ProjectError

from .conftest import TUTORIAL


@pytest.fixture(scope="module")
def tutorial() -> Project:
    return Project(project_dir=TUTORIAL)


def test_default_config_builds_main(tutorial: Project):
    assert tutorial.config_name == "5_every_tag.yaml"
    main = tutorial()
    assert main["letters"] is main["same_letters"]  # !singleton: one object per build
    assert main["fresh_a"] == main["fresh_b"] and main["fresh_a"] is not main["fresh_b"]
    assert main["scaled"] == 21  # !var default
    assert tutorial("main", scale=10)["scaled"] == 70
    assert main["round_2"](3.14159) == 3.14
    assert main["point"] == {"x": 0, "y": 0, "z": 5}
    assert main["steps"] == ["load the data", "train", "evaluate"]


def test_text_views(tutorial: Project):
    assert "letters: *letters" in tutorial.pp()
    assert tutorial.targets == ["meta", "main"]
    assert set(tutorial.graph) >= {"meta", "main"}
    assert tutorial.meta.name == "Project Composition"
    assert tutorial("meta")["config_name"] == "Every tag"


def test_generated_code_builds_the_same_objects(tutorial: Project):
    namespace: dict = {}
    exec(compile(tutorial.code("main"), "<generated>", "exec"), namespace)
    built = namespace["construct"]()
    expected = tutorial("main")
    assert {k: v for k, v in built.items() if k != "round_2"} == {
        k: v for k, v in expected.items() if k != "round_2"
    }
    assert built["letters"] is built["same_letters"]


@pytest.mark.parametrize(
    "config",
    ["1_inheritance.yaml", "2_includes.yaml", "3_sub_templates.yaml", "4_dynamic_args.yaml"],
)
def test_every_tutorial_step_builds(config: str):
    main = Project(config, project_dir=TUTORIAL)()
    assert isinstance(main["greeting"], str)


def test_inheritance_overrides_a_nested_dlist_block():
    main = Project("1_inheritance.yaml", project_dir=TUTORIAL)()
    assert main == {"greeting": "Good morning", "shopping": ["two bottles of milk", "six eggs"]}


def test_template_vars_reach_the_templates():
    main = Project("4_dynamic_args", project_dir=TUTORIAL, greeting="Hi", repeat=2)()
    assert main["repeated"] == ["Hi", "Hi"]


def test_config_names_and_template_names(tutorial: Project):
    assert tutorial.config_names() == [
        "1_inheritance.yaml",
        "2_includes.yaml",
        "3_sub_templates.yaml",
        "4_dynamic_args.yaml",
        "5_every_tag.yaml",
    ]
    assert tutorial.template_name("2_includes") == "configs/2_includes.yaml"
    path = str(TUTORIAL / "templates" / "configs" / "2_includes.yaml")
    assert tutorial.template_name(path) == "configs/2_includes.yaml"


def test_load_another_config_keeps_the_selected_one(tutorial: Project):
    other = tutorial.load("2_includes.yaml")
    assert other.build("main")["units"]["mass"] == "kilogram"
    assert tutorial.config_name == "5_every_tag.yaml"


def test_unknown_config_is_a_config_error():
    with pytest.raises(ConfigError, match="nope.yaml"):
        Project("nope.yaml", project_dir=TUTORIAL)


def test_open_loads_no_config_and_select_does(project: Path):
    proj = Project.open(project)
    assert proj.config_name is None
    proj.select()
    assert proj.config_name == "default.yaml"
    assert proj()["greeting"].startswith("Hello")


def test_no_default_config(project: Path):
    (project / "meta.yaml").write_text('-- extends "meta_defaults.yaml"\n')
    proj = Project(project_dir=project)
    with pytest.raises(ProjectError, match="no default_config"):
        proj()


def test_top_level_names_are_lazy():
    assert forgather.Project is Project
    assert forgather.ConfigError is ConfigError
    code = (
        "import sys, forgather; print('forgather.config' in sys.modules, 'jinja2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    with pytest.raises(AttributeError):
        forgather.nothing_here  # noqa: B018
