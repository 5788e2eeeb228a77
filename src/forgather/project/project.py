"""The ``Project`` API: one project's configs, loaded and built from Python.

    proj = Project("default.yaml", project_dir="examples/tutorials/project_composition")
    print(proj.pp())            # rendered YAML
    obj = proj("main")          # build a target
    print(proj.code("main"))    # the equivalent standalone Python

A project renders ``meta.yaml`` once (:func:`load_meta`), makes one
``ConfigEnvironment`` over its search path, and loads configs through it, so
loading a second config (or the same one with other variables) reuses Jinja's
compiled templates.

Decision a reader may question: config names are relative to the project's
``config_prefix`` (``-t default.yaml`` means ``configs/default.yaml``), as users
type them; a path to an existing file inside a search directory is accepted
too, so shell tab-completion of file names works.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from forgather.config import Config, ConfigEnvironment, ConfigError, ImportPolicy
from forgather.project.meta import MetaConfig, ProjectError, load_meta

CONFIG_SUFFIXES = (".yaml", ".yml")
_TEMPLATE_NAME = re.compile(r"^[\w.]+(/[\w.]+)*$")


class Project:
    """A project directory with one selected config.

    Args:
        config: config name relative to ``templates/<config_prefix>/``
            (``None``: the project's ``default_config``).
        project_dir: the project directory (holding ``meta.yaml``).
        trust: let configs import anything (``--trust``); ``None`` reads
            ``FORGATHER_TRUST``. By default they may import the allowlist of
            docs/security.md, the project's and workspace's own Python code and
            what ``allow_imports`` in ``meta.yaml`` adds.
        **template_vars: variables for the config's templates (``-D`` on the CLI).

    Raises:
        ProjectError: not a project, or no config named and no default.
        ConfigError: a mistake in ``meta.yaml`` or in the config.
    """

    def __init__(
        self,
        config: str | None = None,
        project_dir: str | os.PathLike = ".",
        *,
        trust: bool | None = None,
        **template_vars: Any,
    ):
        if config is None and "config_name" in template_vars:
            config = template_vars.pop("config_name")  # the original Forgather's keyword
        self._open(project_dir, trust)
        self.select(config, **template_vars)

    def _open(self, project_dir: str | os.PathLike, trust: bool | None) -> None:
        self.meta: MetaConfig = load_meta(project_dir)
        self.project_dir: Path = self.meta.project_dir
        self.trust = trust
        self.environment = self._environment(self.meta.searchpath)
        self.template_vars: dict[str, Any] = {}
        self.config_name: str | None = None
        self._config: Config | None = None
        self._added: set[str] = set()  # template names given by add_template

    def _environment(self, searchpath: list[str]) -> ConfigEnvironment:
        return ConfigEnvironment(
            searchpath=searchpath,
            global_vars=self.meta.template_vars,
            allow_imports=self.meta.allow_imports,
            source_dirs=self.meta.source_dirs,
            trust=self.trust,
        )

    @classmethod
    def open(cls, project_dir: str | os.PathLike = ".", *, trust: bool | None = None) -> Project:
        """A project with no config loaded yet (for listings; see :meth:`select`)."""
        project = cls.__new__(cls)
        project._open(project_dir, trust)
        return project

    @property
    def policy(self) -> ImportPolicy:
        """What this project's configs may import (docs/security.md)."""
        return self.environment.policy

    def select(self, config: str | None = None, **template_vars: Any) -> Config | None:
        """Load ``config`` (default: the project's ``default_config``) as the selected config.

        Args:
            config: config name relative to the config prefix.
            **template_vars: variables for its templates.

        Returns:
            The loaded config, or ``None`` when no config is named and the
            project has no default (``self.config`` then raises).
        """
        self.config_name = config or self.default_config()
        self.template_vars = dict(template_vars)
        self._config = None
        if self.config_name is not None:
            self._config = self.load(self.config_name, **template_vars)
        return self._config

    def default_config(self) -> str | None:
        """``default_config`` of ``meta.yaml`` (None when unset).

        Raises:
            ProjectError: it names no config, at the ``meta.yaml`` line that
                set it (a bare "template not found" would not say where the
                name came from).
        """
        meta = self.meta
        name = meta.default_config
        if name is not None and not self.has_config(name):
            raise ProjectError(
                f"default_config {name!r} is not a config of this project (no "
                f"{self.template_name(name)} in {', '.join(meta.searchdir)})",
                meta.default_config_location,
            )
        return name

    def has_config(self, config: str) -> bool:
        """Whether ``config`` names a config file or an added template."""
        if self._added_name(config):
            return True
        template = self.template_name(config)
        return os.path.isabs(template) or any(
            os.path.isfile(os.path.join(d, template)) for d in self.meta.searchpath
        )

    # -- configs -------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The selected config, loaded."""
        if self._config is None:
            raise ProjectError(
                f"project {self.meta.name!r} has no default_config in meta.yaml; "
                "name a config (-t NAME)"
            )
        return self._config

    def load(self, config: str, **template_vars: Any) -> Config:
        """Load another config (or the same with other variables) of this project.

        Args:
            config: config name (as for the constructor), or the path of a
                config file anywhere: a file outside the search path is loaded
                with its own directory searched first.
            **template_vars: variables for its templates.

        Returns:
            The loaded config; ``self.config`` is unchanged.
        """
        environment, template = self._environment_of(config)
        return environment.load(template, **template_vars)

    def variables_read(self, config: str) -> set[str] | None:
        """Every variable name the templates of ``config`` read, without rendering it.

        None when that cannot be known (a template named at render time).
        """
        environment, template = self._environment_of(config)
        return environment.variables_read(template)

    def _environment_of(self, config: str) -> tuple[ConfigEnvironment, str]:
        """The environment that loads ``config``, and its template name there."""
        template = self._added_name(config) or self.template_name(config)
        if os.path.isabs(template):  # a file outside every search directory
            directory, name = os.path.split(template)
            return self._environment([directory, *self.meta.searchpath]), name
        return self.environment, template

    def template_name(self, config: str) -> str:
        """Map a config name as users type it to its template name.

        ``default.yaml`` → ``configs/default.yaml``; ``default`` also works;
        ``templates/configs/default.yaml`` (an existing file inside a search
        directory) → ``configs/default.yaml``; an existing file outside every
        search directory → its absolute path.
        """
        prefix = self.meta.config_prefix
        candidates = [config] if config.endswith(CONFIG_SUFFIXES) else [config + ".yaml", config]
        for name in candidates:
            template = f"{prefix}/{name}" if prefix else name
            if any(os.path.isfile(os.path.join(d, template)) for d in self.meta.searchpath):
                return template
        for name in candidates:  # a library template used as a config (templatelib/*)
            if not os.path.isabs(name) and any(
                os.path.isfile(os.path.join(d, name)) for d in self.meta.searchpath
            ):
                return name
        if os.path.isfile(config):
            path = os.path.realpath(config)
            for d in self.meta.searchpath:
                d = os.path.realpath(d)
                if path.startswith(d + os.sep):
                    return Path(os.path.relpath(path, d)).as_posix()
            return path
        # Let the environment report it: it may be a sub-template name.
        return f"{prefix}/{candidates[0]}" if prefix else candidates[0]

    def add_template(self, name: str, text: str) -> None:
        """Add an in-memory template ``name`` (``configs/example`` is config ``example``).

        It is found when no file on the search path has that name.
        """
        if not _TEMPLATE_NAME.match(name) or ".." in name.split("/"):
            raise ProjectError(
                f"add_template: {name!r} is not a template name (letters, digits, _ . /)"
            )
        self.environment._templates.add_string(f"#---- {name} ----\n{text}")
        self._added.add(name)

    def _added_name(self, config: str) -> str | None:
        prefix = self.meta.config_prefix
        for name in (config, f"{prefix}/{config}", f"{prefix}/{config}.yaml", f"{config}.yaml"):
            if name in self._added:
                return name
        return None

    def config_names(self) -> list[str]:
        """Every config of the project: names relative to the config prefix, sorted."""
        return list_configs(self.meta)

    # -- the selected config -------------------------------------------------

    def __call__(self, *targets: str | list[str], asdict: bool = False, **context_vars: Any) -> Any:
        """Build targets of the selected config (``!var`` values from ``context_vars``).

        ``proj()`` and ``proj("")`` build ``main``; ``proj("model")`` one target;
        ``proj("model", "tokenizer")`` several in one build (shared singletons
        are shared), returned as a tuple; ``asdict=True``, or one list of names,
        returns a dict (a list silently leaves out names that are not targets,
        as the original Forgather did).
        """
        if targets and isinstance(targets[0], (list, tuple)):
            config = self.config
            names = [t for t in targets[0] if t in config.graph]
            return build_targets(config, names, context_vars)
        names = [t or "main" for t in targets] or ["main"]
        if len(names) == 1 and not asdict:
            return self.config.build(names[0], **context_vars)
        built = build_targets(self.config, names, context_vars)
        return built if asdict else tuple(built[name] for name in names)

    # -- the original Forgather's names ----------------------------------------
    @property
    def pp_config(self) -> str:
        """The selected config's rendered YAML (the original's name for :meth:`pp`)."""
        return self.config.pp

    def load_config(self, config_name: str | None = None, **template_vars: Any) -> None:
        """Select another config (the original's name for :meth:`select`)."""
        self.select(config_name, **template_vars)

    def pp(self) -> str:
        """The selected config's rendered YAML."""
        return self.config.pp

    @property
    def graph(self) -> Any:
        """The selected config's node graph (target name -> node)."""
        return self.config.graph

    @property
    def targets(self) -> list[str]:
        """The selected config's buildable targets."""
        return self.config.targets

    def code(self, target: str = "main") -> str:
        """Standalone Python source that builds ``target`` (defines ``construct()``)."""
        return self.config.to_python(target)

    def __repr__(self) -> str:
        return f"Project({self.config_name!r}, project_dir={str(self.project_dir)!r})"


def build_targets(config: Config, names: list[str], context_vars: dict[str, Any]) -> dict[str, Any]:
    """Build ``names`` of ``config`` in one build: a singleton two targets share is one object.

    Raises:
        ConfigError: a name that is not a target.
    """
    from forgather.config.build import Builder

    for name in names:
        if name not in config.graph:
            known = ", ".join(config.graph) or "(none)"
            raise ConfigError(f"{config.name}: no target {name!r}; targets: {known}")
    builder = Builder(
        {"pp_config": config.pp_template, **context_vars}, config.locate_node, config.policy
    )
    return {name: builder.build(config.graph[name], name) for name in names}


def list_configs(meta: MetaConfig) -> list[str]:
    """Config names under ``<searchdir>/<config_prefix>/`` of a project, first match wins.

    Only the project's own ``searchdir`` is listed, not the template library.

    Args:
        meta: the project's meta values.

    Returns:
        Names relative to the prefix (``default.yaml``, ``sub/x.yaml``), sorted.
    """
    names: set[str] = set()
    for directory in meta.searchdir:
        root = os.path.join(directory, meta.config_prefix)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
            rel = os.path.relpath(dirpath, root)
            for f in filenames:
                if f.endswith(CONFIG_SUFFIXES) and not f.startswith("."):
                    names.add(f if rel == "." else Path(rel, f).as_posix())
    return sorted(names)
