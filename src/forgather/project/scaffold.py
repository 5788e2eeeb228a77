"""Scaffolding for ``forgather ws init`` and ``forgather ws project``.

``init_workspace`` writes ``forgather_workspace/`` (``README.md``,
``base_directories.yaml``, ``meta_defaults.yaml``); ``create_project`` copies
``examples/template_project/`` and writes its ``meta.yaml``. Both produce
directories that ``forgather ls`` and ``pp`` accept at once.

Decision a reader may question: when Forgather is installed from a wheel, the
``examples/`` tree is not there to copy, so ``create_project`` falls back to
writing the same minimal project (``meta.yaml``, ``templates/project.yaml``,
one config) from the strings below. A source checkout always copies the real
example, so the two cannot drift without the example's tests noticing.

A workspace that searches the original Forgather's template library (``ws create
--forgather-dir ORIGINAL -l base``) finds its ``config_type.yaml`` before ours,
whose required blocks are ``main_body`` and ``main_output``, not ``main``; there
``create_project`` writes ``project.yaml`` in that library's terms instead
(``_ORIGINAL_PROJECT_YAML``), found by reading the ``config_type.yaml`` the new
project's search path resolves.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from forgather.project.meta import ProjectError
from forgather.project.workspace import META_FILE, WORKSPACE_DIR, forgather_dir

_IGNORED = shutil.ignore_patterns("output_models", "__pycache__", ".*")


def template_project_dir() -> Path:
    """``examples/template_project`` of a source checkout (may not exist in a wheel)."""
    return forgather_dir() / "examples" / "template_project"


def _quote(text: str) -> str:
    """A YAML/Jinja-safe double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def init_workspace(
    directory: str | os.PathLike,
    name: str,
    description: str = "",
    forgather_dir_path: str | None = None,
    search_paths: list[str] | tuple[str, ...] = (),
    no_defaults: bool = False,
) -> Path:
    """Create ``<directory>/forgather_workspace/``.

    Args:
        directory: the workspace root (created if missing).
        name: workspace name (written to its README).
        description: one-line description.
        forgather_dir_path: the Forgather directory templates see as
            ``ns.forgather_dir`` (default: the installed Forgather).
        search_paths: extra template directories every project searches
            (after its own ``templates/``).
        no_defaults: leave out the default search directory
            (``forgather_workspace/`` itself); only ``search_paths`` remain.

    Returns:
        The created ``forgather_workspace`` directory.

    Raises:
        ProjectError: the workspace already exists.
    """
    ws = Path(directory) / WORKSPACE_DIR
    if ws.exists():
        raise ProjectError(f"{ws} already exists")
    ws.mkdir(parents=True)
    (ws / "README.md").write_text(f"# {name}\n\n{description}\n".rstrip() + "\n")
    fdir = _quote(os.path.abspath(forgather_dir_path)) if forgather_dir_path else "forgather_dir"
    (ws / "base_directories.yaml").write_text(
        "## Where Forgather is; included by meta_defaults.yaml.\n"
        f"-- set ns.forgather_dir = {fdir}\n"
    )
    common = [] if no_defaults else ["{{ joinpath(workspace_root, 'forgather_workspace') }}"]
    common += [os.path.abspath(p) for p in search_paths]
    (ws / "meta_defaults.yaml").write_text(meta_defaults_text(common))
    return ws


def meta_defaults_text(common_dirs: list[str]) -> str:
    """The text of a workspace's ``meta_defaults.yaml``.

    Args:
        common_dirs: directories (or Jinja expressions in ``{{ }}``) searched
            after each project's own ``templates/``.
    """
    common = "".join(f'    - "{d}"\n' for d in common_dirs)
    return (
        "## Defaults that every project's meta.yaml extends.\n"
        "## Blocks: searchdir_project, searchdir_common (template search path, in order)\n"
        "## and configs (name, description, config_prefix, default_config).\n"
        "-- set ns = namespace()\n"
        '-- include "base_directories.yaml"\n'
        'forgather_dir: "{{ ns.forgather_dir }}"\n'
        "config_prefix: configs\n"
        "searchdir:\n"
        "-- block searchdir_project\n"
        "    - \"{{ joinpath(project_dir, 'templates') }}\"\n"
        "-- endblock searchdir_project\n"
        "-- block searchdir_common\n"
        f"{common}"
        "-- endblock searchdir_common\n"
        "-- block configs\n"
        "-- endblock configs\n"
    )


def meta_yaml_text(name: str, description: str, config_prefix: str, default_config: str) -> str:
    """The text of a new project's ``meta.yaml``."""
    return (
        '-- extends "meta_defaults.yaml"\n'
        "\n"
        "-- block configs\n"
        f"name: {_quote(name)}\n"
        f"description: {_quote(description)}\n"
        f"config_prefix: {_quote(config_prefix)}\n"
        f"default_config: {_quote(default_config)}\n"
        "-- endblock configs\n"
    )


# Copies of examples/template_project/templates (a test keeps them equal).
_PROJECT_YAML = """\
## The project's base config: every config in configs/ extends it.
## It extends config_type.yaml from Forgather's templatelib/base, which
## defines the blocks overridden here (config_metadata, meta, main, ...).
-- extends "config_type.yaml"

[config_metadata]
    -- set ns.config_class = "type.example"

[main]
main: !call:dict
    greeting: "Hello from a new Forgather project"
    words: !call:builtins:str.split [ "configs compose by inheritance" ]
"""

# project.yaml for a workspace on the original Forgather's templatelib/base, whose
# config_type.yaml requires the blocks main_body and main_output (it has no [main]).
_ORIGINAL_PROJECT_YAML = """\
## The project's base config: every config in configs/ extends it.
## It extends config_type.yaml from the original Forgather's templatelib/base
## (this workspace's template library): main_output holds the `main` target.
-- extends "config_type.yaml"

[config_metadata]
    == super()
    -- set ns.config_class = "type.example"

[main_body]

[main_output]
main: !call:dict
    greeting: "Hello from a new Forgather project"
    words: !call:builtins:str.split [ "configs compose by inheritance" ]
"""


def _uses_original_config_type(project: Path) -> bool:
    """Whether the ``config_type.yaml`` that ``project``'s search path resolves first is the
    original Forgather's (it declares the ``main_output`` block); False when the project's
    meta.yaml cannot be read or no config_type.yaml is found."""
    from forgather.project.meta import load_meta

    try:
        searchpath = load_meta(project).searchpath
    except ProjectError:
        return False
    for directory in searchpath:
        candidate = Path(directory) / "config_type.yaml"
        if candidate.is_file():
            return "block main_output" in candidate.read_text(encoding="utf-8", errors="replace")
    return False


def config_text(name: str, description: str = "") -> str:
    """A config of a scaffolded project: it extends ``project.yaml`` and names itself."""
    return (
        "## The project's starting config. Copy it to make another, then change blocks.\n"
        '-- extends "project.yaml"\n'
        "\n"
        "[config_metadata]\n"
        "    == super()\n"
        f"    -- set ns.config_name = {_quote(name)}\n"
        f"    -- set ns.config_description = {_quote(description)}\n"
    )


_DEFAULT_CONFIG = config_text("Default", "The project's starting config")


def create_project(
    directory: str | os.PathLike,
    name: str,
    description: str = "",
    config_prefix: str = "configs",
    default_config: str = "default.yaml",
) -> Path:
    """Create a project by copying ``examples/template_project``.

    Args:
        directory: the new project directory (must not exist, or be empty).
        name: project name.
        description: one-line description.
        config_prefix: subdirectory of ``templates/`` holding configs.
        default_config: the config used when none is named; the template's
            starting config is renamed to it.

    Returns:
        The project directory.

    Raises:
        ProjectError: the directory exists and is not empty.
    """
    project = Path(directory)
    if project.exists() and any(project.iterdir()):
        raise ProjectError(f"{project} already exists and is not empty")
    source = template_project_dir()
    if source.is_dir():
        shutil.copytree(source, project, ignore=_IGNORED, dirs_exist_ok=True)
    else:
        (project / "templates" / "configs").mkdir(parents=True, exist_ok=True)
        (project / "templates" / "project.yaml").write_text(_PROJECT_YAML)
        (project / "templates" / "configs" / "default.yaml").write_text(_DEFAULT_CONFIG)
    templates = project / "templates"
    if config_prefix != "configs" and (templates / "configs").is_dir():
        (templates / config_prefix).parent.mkdir(parents=True, exist_ok=True)
        (templates / "configs").rename(templates / config_prefix)
    configs = templates / config_prefix
    configs.mkdir(parents=True, exist_ok=True)
    target = configs / default_config
    if not target.exists() and (configs / "default.yaml").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        (configs / "default.yaml").rename(target)
    (project / META_FILE).write_text(
        meta_yaml_text(name, description, config_prefix, default_config)
    )
    project_yaml = templates / "project.yaml"
    if project_yaml.is_file() and _uses_original_config_type(project):
        project_yaml.write_text(_ORIGINAL_PROJECT_YAML)
    return project
