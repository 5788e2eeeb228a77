"""The example projects' configs: generated code rebuilds exactly what `build` builds,
and `to_yaml` round-trips (the Foundation issue's check on real templates)."""

from pathlib import Path

import pytest

from forgather.config import ConfigEnvironment
from forgather.project import Project
from tests.config.equivalence import construct, same_structure

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLAIN_PYTHON_PROJECTS = [
    EXAMPLES / "tutorials" / "project_composition",
    EXAMPLES / "template_project",
]
CONFIGS = [
    (project, name)
    for project in PLAIN_PYTHON_PROJECTS
    for name in Project.open(str(project)).config_names()
]


@pytest.mark.parametrize(("project", "name"), CONFIGS, ids=[f"{p.name}/{n}" for p, n in CONFIGS])
def test_generated_code_equals_build(project, name):
    proj = Project.open(str(project))
    cfg = proj.load(proj.template_name(name))
    for target in cfg.targets:
        built = cfg.build(target)
        generated = construct(cfg, target)
        assert same_structure(built, generated), (target, built, generated)


@pytest.mark.parametrize(("project", "name"), CONFIGS, ids=[f"{p.name}/{n}" for p, n in CONFIGS])
def test_to_yaml_round_trips(project, name):
    proj = Project.open(str(project))
    cfg = proj.load(proj.template_name(name))
    dumped = cfg.to_yaml()
    again = ConfigEnvironment([]).load_from_string(dumped)
    assert again.to_yaml() == dumped
    assert same_structure(cfg.build(), again.build())
