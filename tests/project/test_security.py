"""Projects and the import allowlist (docs/security.md): ``allow_imports`` in meta.yaml,
the project's and workspace's own code, ``trust``, meta.yaml read as data, and the
defaults covering every config we ship."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from forgather.config import ConfigEnvironment, RefusedImportError
from forgather.config.nodes import CallNode
from forgather.config.spec import parse_spec
from forgather.config.traverse import walk
from forgather.project import (
    Project,
    ProjectError,
    find_projects,
    load_meta,
    templatelib_searchdirs,
)

from .conftest import REPO_ROOT

CONFIG = "-- extends 'project.yaml'\n[main]\nmain: {main}\n"


def set_main(project: Path, main: str) -> None:
    (project / "templates" / "configs" / "default.yaml").write_text(CONFIG.format(main=main))


def add_meta(project: Path, lines: str) -> None:
    text = (project / "meta.yaml").read_text()
    (project / "meta.yaml").write_text(
        text.replace("-- block configs\n", f"-- block configs\n{lines}", 1)
    )


@pytest.fixture
def extlib(tmp_path_factory, monkeypatch) -> Path:
    """``forgather_extlib``: an importable module outside every project and workspace."""
    libs = tmp_path_factory.mktemp("libs")  # not below tmp_path, the workspace
    (libs / "forgather_extlib.py").write_text("def make(x=1):\n    return ('made', x)\n")
    monkeypatch.syspath_prepend(str(libs))
    monkeypatch.delitem(sys.modules, "forgather_extlib", raising=False)
    yield libs
    sys.modules.pop("forgather_extlib", None)


def test_a_module_outside_the_allowlist_is_refused_with_how_to_allow_it(project, extlib):
    set_main(project, "!call:forgather_extlib:make")
    proj = Project(project_dir=project)
    with pytest.raises(RefusedImportError) as info:
        proj()
    message = str(info.value)
    assert message.startswith(f"{project / 'templates' / 'configs' / 'default.yaml'}:3: ")
    assert "!call:forgather_extlib:make" in message
    assert "add 'forgather_extlib' to `allow_imports:` in the project's meta.yaml" in message
    assert "--trust" in message and "FORGATHER_TRUST=1" in message
    assert "forgather_extlib" not in sys.modules


def test_allow_imports_in_meta_yaml(project, extlib):
    set_main(project, "!call:forgather_extlib:make [2]")
    add_meta(project, "allow_imports: [forgather_extlib, other.module]\n")
    proj = Project(project_dir=project)
    assert proj.meta.allow_imports == ["forgather_extlib", "other.module"]
    assert proj.meta.as_dict()["allow_imports"] == ["forgather_extlib", "other.module"]
    assert proj() == ("made", 2)


def test_allow_imports_may_name_a_directory_relative_to_the_project(project, extlib):
    set_main(project, f"!call:{extlib}/forgather_extlib.py:make [3]")
    with pytest.raises(RefusedImportError, match="is not in the project, the workspace"):
        Project(project_dir=project)()
    add_meta(project, f"allow_imports: [{os.path.relpath(extlib, project)}/]\n")
    proj = Project(project_dir=project)
    assert proj.meta.allow_imports == [str(extlib)]
    assert proj() == ("made", 3)


def test_the_workspace_defaults_extend_every_project(project, workspace, extlib):
    defaults = workspace / "forgather_workspace" / "meta_defaults.yaml"
    defaults.write_text(defaults.read_text() + "allow_imports: [forgather_extlib]\n")
    set_main(project, "!call:forgather_extlib:make")
    assert Project(project_dir=project)() == ("made", 1)


def test_the_projects_and_workspaces_own_python_files(project, workspace):
    (project / "helpers.py").write_text("def make():\n    return 'own'\n")
    (workspace / "shared.py").write_text(
        "from .helpers_two import VALUE\n\ndef get():\n    return VALUE\n"
    )
    (workspace / "helpers_two.py").write_text("VALUE = 'workspace'\n")
    set_main(
        project,
        f"!call:dict\n    a: !call:{project}/helpers.py:make\n"
        f"    b: !call:.shared:get\n        submodule_searchpath: [{workspace}]\n",
    )
    assert Project(project_dir=project)() == {"a": "own", "b": "workspace"}


def test_trust_allows_everything_for_one_project(project, monkeypatch):
    set_main(project, "!call:os:getcwd")
    with pytest.raises(RefusedImportError, match="'os.getcwd' is refused by default"):
        Project(project_dir=project)()
    assert Project(project_dir=project, trust=True)() == os.getcwd()
    opened = Project.open(project, trust=True)
    assert opened.policy.trust and opened.load("configs/default.yaml").build("main") == os.getcwd()
    monkeypatch.setenv("FORGATHER_TRUST", "1")
    assert Project(project_dir=project)() == os.getcwd()


def test_meta_yaml_is_data(project):
    add_meta(project, "extra: !call:str [x]\npath: !call:os.path:join [a, b]\n")
    assert load_meta(project).values["extra"] == "x"
    add_meta(project, "cwd: !call:os:getcwd\n")
    with pytest.raises(RefusedImportError, match="write plain values here") as info:
        load_meta(project)
    assert info.value.location.file == str(project / "meta.yaml")


@pytest.mark.parametrize("value", ["forgather_extlib", "[1, 2]", "['not a module!']", "['']"])
def test_bad_allow_imports(project, value):
    add_meta(project, f"allow_imports: {value}\n")
    with pytest.raises(ProjectError, match="allow_imports"):
        load_meta(project)


def _refusals(cfg) -> list[str]:
    """Every SPEC of ``cfg`` the default policy refuses, decided by name (nothing imported)."""
    return [
        f"{v.dotted}: {v.value.spec}"
        for v in walk(cfg.graph)
        if isinstance(v.value, CallNode)
        and v.first
        and cfg.policy.refusal(parse_spec(v.value.spec))
    ]


SHIPPED = [
    (project, name)
    for project in find_projects(REPO_ROOT / "examples")
    for name in Project.open(project).config_names()
]


@pytest.mark.parametrize(("project", "name"), SHIPPED, ids=[f"{p.name}/{n}" for p, n in SHIPPED])
def test_the_defaults_allow_every_shipped_config(project, name):
    proj = Project.open(project)
    cfg = proj.load(proj.template_name(name))
    assert _refusals(cfg) == []
    for target in ("meta", "dynamic_args"):  # what listing commands read: plain data
        if target in cfg.targets:
            cfg.build_data(target)


def test_the_defaults_allow_every_library_template():
    env = ConfigEnvironment(templatelib_searchdirs(), source_dirs=[])
    loaded = 0
    for name, _ in env.list_templates():
        if not name.endswith(".yaml"):
            continue
        try:
            cfg = env.load(name)
        except Exception:  # a fragment (a block of another template) or needs variables
            continue
        loaded += 1
        assert _refusals(cfg) == [], name
    assert loaded >= 10
