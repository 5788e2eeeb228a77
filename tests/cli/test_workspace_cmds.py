"""``ws init`` + ``ws project``, then ``ls``, ``pp``, ``construct`` on the result."""

from __future__ import annotations

from pathlib import Path

from .conftest import run_cli


def test_init_project_then_use_it(tmp_path: Path):
    result = run_cli("ws", "init", "--name", "Scratch", "--description", "try things", cwd=tmp_path)
    assert result.rc == 0, result.err
    assert (tmp_path / "forgather_workspace" / "meta_defaults.yaml").is_file()

    result = run_cli("ws", "project", "--name", "My First Project", cwd=tmp_path)
    assert result.rc == 0, result.err
    assert result.err == ""  # inside a workspace: no note
    project = tmp_path / "my_first_project"

    result = run_cli("-p", str(project), "ls")
    assert result.rc == 0, result.err
    assert result.out.startswith("My First Project\n")
    assert "* default.yaml  Default: The project's starting config" in result.out

    result = run_cli("pp", cwd=project)
    assert 'greeting: "Hello from a new Forgather project"' in result.out

    result = run_cli("construct", cwd=project)
    assert result.out == (
        "{'greeting': 'Hello from a new Forgather project',\n"
        " 'words': ['configs', 'compose', 'by', 'inheritance']}\n"
    )


def test_project_options(tmp_path: Path):
    shared = tmp_path / "shared_templates"
    shared.mkdir()
    (shared / "extra.yaml").write_text("## shared\n")
    run_cli("-p", str(tmp_path), "ws", "init", "--name", "W", "--no-defaults", str(shared))
    result = run_cli(
        "-p", str(tmp_path),
        "ws", "project", "--name", "P", "--description", "d",
        "--config-prefix", "exp", "--default-config", "base.yaml", "proj",
    )  # fmt: skip
    assert result.rc == 0, result.err
    result = run_cli("-p", str(tmp_path / "proj"), "meta")
    assert "config_prefix: exp\ndefault_config: base.yaml\n" in result.out
    assert f"  - {shared}\n" in result.out
    assert "forgather_workspace\n" not in result.out  # --no-defaults
    result = run_cli("-p", str(tmp_path / "proj"), "tlist")
    assert "extra.yaml" in result.out


def test_project_outside_a_workspace_notes_it(tmp_path: Path):
    result = run_cli("ws", "project", "--name", "Lonely", cwd=tmp_path)
    assert result.rc == 0
    assert "no forgather_workspace/ above" in result.err
    result = run_cli("ls", cwd=tmp_path / "lonely")
    assert result.rc == 1
    assert "forgather ws init" in result.err


def test_init_twice_is_an_error(tmp_path: Path):
    assert run_cli("ws", "init", "--name", "A", cwd=tmp_path).rc == 0
    result = run_cli("ws", "init", "--name", "A", cwd=tmp_path)
    assert result.rc == 1
    assert "already exists" in result.err


def test_ws_alone_prints_the_workspace_directory(tmp_path: Path):
    missing = run_cli("ws", cwd=tmp_path)
    assert missing.rc == 1 and "no forgather_workspace/" in missing.err
    (tmp_path / "forgather_workspace").mkdir()
    (tmp_path / "proj").mkdir()
    found = run_cli("ws", cwd=tmp_path / "proj")
    assert (found.rc, found.out) == (0, f"{tmp_path}\n")


# The original Forgather's templatelib/base/config_type.yaml, reduced to what a new project
# meets: no [main] block, but the required blocks main_body and main_output.
_ORIGINAL_CONFIG_TYPE = """\
-- set ns = namespace()
-- block config_metadata
    -- set ns.config_name = "Undefined"
    -- set ns.config_description = "Undefined"
    -- set ns.config_class = "type"
<< endblock config_metadata
-- block main_body required
## Main Body
<< endblock main_body
meta: &meta_output !dict:@meta
    config_name: "{{ ns.config_name }}"
    config_description: "{{ ns.config_description }}"
    config_class: "{{ ns.config_class }}"
-- block main_output required
## main: !singleton:foo ...
<< endblock main_output
"""


def test_project_create_in_a_workspace_on_the_original_template_library(tmp_path: Path):
    """`ws create -l base` over the original's templatelib, then `project create`: the new
    project fills that library's blocks (main_output), so it lists, renders and builds."""
    original = tmp_path / "original"
    (original / "templatelib" / "base").mkdir(parents=True)
    (original / "templatelib" / "examples").mkdir()
    (original / "templatelib" / "base" / "config_type.yaml").write_text(_ORIGINAL_CONFIG_TYPE)
    ws = ["ws", "create", "--name", "My WS", "--description", "d"]
    created = run_cli(
        *ws, "--forgather-dir", str(original), "-l", "base", "-l", "examples", cwd=tmp_path
    )
    assert created.rc == 0, created.err
    result = run_cli(
        "project", "create", "--name", "My Proj", "--description", "d", cwd=tmp_path / "my_ws"
    )
    assert result.rc == 0, result.err
    project = tmp_path / "my_ws" / "my_proj"
    assert "[main_output]" in (project / "templates" / "project.yaml").read_text()

    listing = run_cli("ls", cwd=project)
    assert listing.rc == 0, listing.err
    assert "* default.yaml  Default: The project's starting config" in listing.out
    assert "ERROR" not in listing.out
    pp = run_cli("pp", cwd=project)
    assert pp.rc == 0, pp.err
    assert 'main: !call:dict\n    greeting: "Hello from a new Forgather project"' in pp.out
    assert 'config_class: "type.example"' in pp.out
    built = run_cli("construct", cwd=project)
    assert built.out.startswith("{'greeting': 'Hello from a new Forgather project',"), built.err
