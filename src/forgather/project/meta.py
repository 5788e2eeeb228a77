"""``meta.yaml``: what a project is called and where its templates are.

``meta.yaml`` is itself a template, usually ``-- extends "meta_defaults.yaml"``,
rendered with the search path ``[project dir, <workspace>/forgather_workspace]``
and the variables ``project_dir``, ``workspace_root`` and ``forgather_dir``.
Its targets give ``name``, ``description``, ``searchdir`` (ordered template
directories), ``config_prefix`` (default ``configs``), ``default_config`` and
``allow_imports`` (modules and directories the project's configs may import
beyond the defaults; docs/security.md).
:class:`MetaConfig` holds the result; :attr:`MetaConfig.searchpath` is
``searchdir`` followed by Forgather's installed template library.

Decision a reader may question: meta values are *built as data*
(``Config.build_data()``), not read from the rendered text with
``yaml.safe_load``, so ``meta.yaml`` may use the same containers and ``!var``
as any config and its errors carry the same file:line; but every command
reads ``meta.yaml``, including those that must run nothing from a project
(``ls``, ``pp``), so a tag that would import or call anything beyond the pure
builtins is an error here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgather.config import ConfigEnvironment, ConfigError
from forgather.config.policy import META_KEY as ALLOW_KEY
from forgather.project.workspace import (
    META_FILE,
    WORKSPACE_DIR,
    find_workspace_root,
    forgather_dir,
    templatelib_searchdirs,
)


class ProjectError(ConfigError):
    """A directory that is not a usable project (no ``meta.yaml``, no workspace...)."""

    kind = "project"


@dataclass
class MetaConfig:
    """The resolved ``meta.yaml`` of one project.

    Attributes:
        project_dir: absolute project directory.
        workspace_root: absolute directory holding ``forgather_workspace/``.
        name: project name (defaults to the directory name).
        description: one-line project description.
        searchdir: template directories declared by ``meta.yaml``, in order.
        config_prefix: subdirectory of the search dirs holding configs.
        default_config: config used when none is named (relative to the prefix).
        allow_imports: module prefixes and directories (relative ones resolved
            against the project) that configs may import beyond the defaults.
        values: every value ``meta.yaml`` defined, for project-specific keys.
    """

    project_dir: Path
    workspace_root: Path
    name: str
    description: str = ""
    searchdir: list[str] = field(default_factory=list)
    config_prefix: str = "configs"
    default_config: str | None = None
    allow_imports: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def searchpath(self) -> list[str]:
        """``searchdir`` then the installed template library (always last, no duplicates)."""
        path = list(dict.fromkeys(self.searchdir))
        seen = {os.path.realpath(p) for p in path}
        path += [d for d in templatelib_searchdirs() if os.path.realpath(d) not in seen]
        return path

    @property
    def template_vars(self) -> dict[str, str]:
        """Variables every template of this project sees."""
        return {
            "project_dir": str(self.project_dir),
            "workspace_root": str(self.workspace_root),
            "forgather_dir": str(forgather_dir()),
        }

    def as_dict(self) -> dict[str, Any]:
        """The resolved values, for printing (``forgather meta``); ``allow_imports`` when set."""
        values = {
            "name": self.name,
            "description": self.description,
            "project_dir": str(self.project_dir),
            "workspace_root": str(self.workspace_root),
            "config_prefix": self.config_prefix,
            "default_config": self.default_config,
            "searchpath": self.searchpath,
        }
        if self.allow_imports:
            values["allow_imports"] = self.allow_imports
        return values

    @property
    def source_dirs(self) -> list[str]:
        """Directories holding the project's own Python code: the project and the workspace."""
        return [str(self.project_dir), str(self.workspace_root)]


def load_meta(project_dir: str | os.PathLike = ".") -> MetaConfig:
    """Render a project's ``meta.yaml`` into a :class:`MetaConfig`.

    Args:
        project_dir: the project directory.

    Returns:
        The resolved meta values.

    Raises:
        ProjectError: no ``meta.yaml``, no workspace above the project, or
            values of the wrong type.
        ConfigError: a mistake inside ``meta.yaml`` or the templates it uses.
    """
    project = Path(project_dir).resolve()
    if not (project / META_FILE).is_file():
        raise ProjectError(
            f"{project} is not a Forgather project (no {META_FILE}); "
            "pass -p DIR or create one with `forgather ws project`"
        )
    workspace = find_workspace_root(project)
    if workspace is None:
        raise ProjectError(
            f"no {WORKSPACE_DIR}/ directory in {project} or any parent; "
            "create one with `forgather ws init`"
        )
    variables = {
        "project_dir": str(project),
        "workspace_root": str(workspace),
        "forgather_dir": str(forgather_dir()),
    }
    env = ConfigEnvironment(
        searchpath=[str(project), str(workspace / WORKSPACE_DIR)], global_vars=variables
    )
    config = env.load(META_FILE)
    values = config.build_data()
    return _meta_from_values(project, workspace, values)


def _allow_imports(project: Path, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ProjectError(
            f"{project / META_FILE}: {ALLOW_KEY} must be a list of module names "
            "(mypkg, other.module) or directories (entries with a /)"
        )
    entries = []
    for entry in value:
        entry = entry.strip()
        if "/" in entry or os.sep in entry or entry.startswith(("~", ".")):
            entry = os.path.normpath(project / os.path.expanduser(entry))  # relative to the project
        elif not all(part.isidentifier() for part in entry.split(".")):
            raise ProjectError(
                f"{project / META_FILE}: {ALLOW_KEY}: {entry!r} is not a module name or a directory"
            )
        entries.append(entry)
    return entries


def _meta_from_values(project: Path, workspace: Path, values: Any) -> MetaConfig:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ProjectError(f"{project / META_FILE}: must render to a mapping")
    searchdir = values.get("searchdir")
    if searchdir is None:
        searchdir = [str(project / "templates")]
    if isinstance(searchdir, str) or not all(isinstance(d, str) for d in searchdir):
        raise ProjectError(f"{project / META_FILE}: searchdir must be a list of directories")
    # Relative search directories are relative to the project, not to the cwd.
    searchdir = [os.path.normpath(project / d) for d in searchdir]
    return MetaConfig(
        project_dir=project,
        workspace_root=workspace,
        name=str(values.get("name") or project.name),
        description=str(values.get("description") or ""),
        searchdir=searchdir,
        config_prefix=str(values.get("config_prefix") or "configs"),
        default_config=values.get("default_config") or None,
        allow_imports=_allow_imports(project, values.get(ALLOW_KEY)),
        values=values,
    )
