"""Projects and workspaces: ``meta.yaml``, search paths and the ``Project`` API.

Public names::

    from forgather.project import Project, MetaConfig, load_meta
    from forgather.project import find_workspace_root, find_projects, list_configs
    from forgather.project import init_workspace, create_project
    from forgather.project import from_project   # the original Forgather's name

Decisions a reader may question:

* A project is always inside a workspace (a parent directory holding
  ``forgather_workspace/``); there is no implicit default workspace, so the
  search path of every project is written down in files the user can read.
* The names are resolved lazily (module ``__getattr__``): the project walk in
  ``workspace.py`` needs no template engine, and ``forgather ls -r`` with a
  warm listing cache must not pay for importing Jinja2 and PyYAML.
"""

from __future__ import annotations

from forgather._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from forgather.project.compat import from_project
    from forgather.project.meta import MetaConfig, ProjectError, load_meta
    from forgather.project.project import Project, list_configs
    from forgather.project.scaffold import create_project, init_workspace
    from forgather.project.workspace import (
        find_projects,
        find_workspace_root,
        forgather_dir,
        templatelib_dir,
        templatelib_searchdirs,
    )

_WHERE = {
    "MetaConfig": "meta",
    "ProjectError": "meta",
    "load_meta": "meta",
    "from_project": "compat",
    "Project": "project",
    "list_configs": "project",
    "create_project": "scaffold",
    "init_workspace": "scaffold",
    "find_projects": "workspace",
    "find_workspace_root": "workspace",
    "forgather_dir": "workspace",
    "templatelib_dir": "workspace",
    "templatelib_searchdirs": "workspace",
}

__all__ = [
    "MetaConfig",
    "Project",
    "ProjectError",
    "create_project",
    "find_projects",
    "find_workspace_root",
    "forgather_dir",
    "from_project",
    "init_workspace",
    "list_configs",
    "load_meta",
    "templatelib_dir",
    "templatelib_searchdirs",
]


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
