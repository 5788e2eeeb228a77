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
from forgather.config.errors import SourceLocation
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


@dataclass(init=False)
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
    #: The ``meta.yaml`` line that names ``default_config``, for errors about it.
    default_config_location: SourceLocation | None = None

    def __init__(
        self,
        project_dir: str | os.PathLike = ".",
        workspace_root: str | os.PathLike | None = None,
        name: str | None = None,
        description: str = "",
        searchdir: list[str] | None = None,
        config_prefix: str = "configs",
        default_config: str | None = None,
        allow_imports: list[str] | None = None,
        values: dict[str, Any] | None = None,
    ):
        # MetaConfig(project_dir) alone reads the project's meta.yaml, as the
        # original Forgather's MetaConfig(project_dir) did.
        if workspace_root is None and name is None:
            loaded = load_meta(project_dir)
            self.__dict__.update(vars(loaded))
            return
        self.project_dir = Path(project_dir)
        self.workspace_root = Path(workspace_root) if workspace_root is not None else Path(".")
        self.name = name if name is not None else Path(project_dir).name
        self.description = description
        self.searchdir = list(searchdir or [])
        self.config_prefix = config_prefix
        self.default_config = default_config
        self.allow_imports = list(allow_imports or [])
        self.values = dict(values or {})

    @property
    def searchpath(self) -> list[str]:
        """``searchdir`` then the installed template library (always last, no duplicates).

        Computed once per ``searchdir`` (commands ask for it for every config
        they name; each time it would resolve every directory's real path).
        """
        key = tuple(self.searchdir)
        memo = self.__dict__.get("_searchpath_memo")
        if memo is None or memo[0] != key:
            path = list(dict.fromkeys(self.searchdir))
            seen = {os.path.realpath(p) for p in path}
            path += [d for d in templatelib_searchdirs() if os.path.realpath(d) not in seen]
            memo = self.__dict__["_searchpath_memo"] = (key, path)
        return list(memo[1])

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

    # -- the original Forgather's MetaConfig names (docs: migrating) ---------
    @property
    def project_name(self) -> str:
        """The project's name (the original's spelling of :attr:`name`)."""
        return self.name

    @property
    def default_cfg(self) -> str | None:
        """The default config (the original's spelling of :attr:`default_config`)."""
        return self.default_config

    @property
    def meta_path(self) -> str:
        """The path of the project's ``meta.yaml``."""
        return str(self.project_dir / META_FILE)

    @property
    def config_dict(self) -> dict[str, Any]:
        """Every value ``meta.yaml`` defined (the original's spelling of :attr:`values`)."""
        return self.values

    @property
    def system_path(self) -> str | None:
        """``system_path`` from ``meta.yaml``, relative to the project; None if unset."""
        value = self.values.get("system_path")
        return None if value is None else os.path.normpath(self.project_dir / str(value))

    def config_path(self, config_template: str | None = None) -> str:
        """The template name of a config (``None`` or ``""``: the default config)."""
        name = config_template or self.default_config
        if not name:
            raise ProjectError(f"project {self.name!r} has no default_config in meta.yaml")
        return f"{self.config_prefix}/{name}" if self.config_prefix else name

    def find_templates(self, prefix: str = "", suffix: str = ".yaml"):
        """Yield ``(name relative to prefix, path)`` of every template under ``prefix``.

        Args:
            prefix: a directory inside the search directories (``"models"``).
            suffix: how the file names end.
        """
        for directory in self.searchpath:
            root = os.path.join(directory, prefix)
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for filename in sorted(filenames):
                    if filename.endswith(suffix):
                        path = os.path.join(dirpath, filename)
                        yield Path(os.path.relpath(path, root)).as_posix(), path

    @staticmethod
    def find_workspace_dir(project_dir: str | os.PathLike) -> str:
        """The workspace root at or above ``project_dir``.

        Raises:
            ProjectError: there is none.
        """
        root = find_workspace_root(Path(project_dir).resolve())
        if root is None:
            raise ProjectError(f"no {WORKSPACE_DIR}/ directory in {project_dir} or any parent")
        return str(root)

    @staticmethod
    def find_project_dir(path: str | os.PathLike) -> str:
        """The nearest directory at or above ``path`` holding a ``meta.yaml``.

        Raises:
            ProjectError: there is none.
        """
        current = Path(path).resolve()
        for candidate in (current, *current.parents):
            if (candidate / META_FILE).is_file():
                return str(candidate)
        raise ProjectError(f"no {META_FILE} in {path} or any parent")

    def __str__(self) -> str:
        return "".join(
            f"{label}: {value}\n"
            for label, value in (
                ("Project Name", self.name),
                ("Description", self.description),
                ("Default Config", self.default_config),
                ("Project Directory", self.project_dir),
                ("Workspace Root", self.workspace_root),
                ("Config Prefix", self.config_prefix),
                ("Search Path", self.searchpath),
            )
        )


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
    return _meta_from_values(project, workspace, values, config)


class _MetaValues:
    """The values ``meta.yaml`` rendered to, each checked for its type where it is read.

    A wrong type is a :class:`ProjectError` at the line that set the value
    (``Config.why``), or at ``meta.yaml`` itself when the value has no line
    of its own (a value made by a macro, say).
    """

    def __init__(self, project: Path, config: Any, values: Any) -> None:
        self.project = project
        self._config = config
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ProjectError(f"{project / META_FILE}: must render to a mapping")
        self.values = values

    def where(self, key: str) -> SourceLocation | None:
        """The template line that set ``key``, when it has one."""
        if self._config is None or key not in self.values:
            return None
        try:
            return self._config.why(key).location
        except ConfigError:
            return None

    def error(self, key: str, reason: str) -> ProjectError:
        location = self.where(key)
        if location is None:
            return ProjectError(f"{self.project / META_FILE}: {key}: {reason}")
        return ProjectError(f"{key}: {reason}", location)

    def text(self, key: str, default: str | None, numbers: bool = True) -> str | None:
        """A string value (with ``numbers``, a number is taken as its text: ``name: 2024``)."""
        value = self.values.get(key)
        if value is None or value == "":
            return default
        kinds = (str, int, float) if numbers else str
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise self.error(key, f"must be a string, got {_shown(value)}")
        return str(value)

    def strings(self, key: str, what: str) -> list[str] | None:
        """A list of non-empty strings, or None when absent."""
        value = self.values.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.error(key, f"must be a list of {what}, got {_shown(value)}")
        return [v.strip() for v in value]


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


def _allow_imports(meta: _MetaValues) -> list[str]:
    value = meta.strings(ALLOW_KEY, "module names (mypkg, other.module) or directories (with a /)")
    entries = []
    for entry in value or []:
        if "/" in entry or os.sep in entry or entry.startswith(("~", ".")):
            entry = os.path.normpath(meta.project / os.path.expanduser(entry))  # from the project
        elif not all(part.isidentifier() for part in entry.split(".")):
            raise meta.error(ALLOW_KEY, f"{entry!r} is not a module name or a directory")
        entries.append(entry)
    return entries


def _meta_from_values(
    project: Path, workspace: Path, values: Any, config: Any = None
) -> MetaConfig:
    meta = _MetaValues(project, config, values)
    searchdir = meta.strings("searchdir", "directories") or [str(project / "templates")]
    default_config = meta.text("default_config", None, numbers=False)
    resolved = MetaConfig(
        project_dir=project,
        workspace_root=workspace,
        name=meta.text("name", project.name),
        description=meta.text("description", ""),
        # Relative search directories are relative to the project, not to the cwd.
        searchdir=[os.path.normpath(project / d) for d in searchdir],
        config_prefix=meta.text("config_prefix", "configs"),
        default_config=default_config,
        allow_imports=_allow_imports(meta),
        values=meta.values,
    )
    resolved.default_config_location = meta.where("default_config")
    return resolved
