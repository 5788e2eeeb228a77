"""The facade: ``ConfigEnvironment`` loads templates into ``Config`` objects.

Build, codegen and dump are imported when first used: ``forgather pp`` and
``ls`` only render and parse, and they must start fast.

A :class:`Config` is one rendered config: its YAML (``pp``), its node graph
and everything you can do with the graph (build, generate code, dump YAML,
override values). It also owns the mapping from rendered lines back to the
template lines, computed only when an error or a tool needs it, and the
:class:`~forgather.config.policy.ImportPolicy` its environment gave it, which
build, ``check`` and ``to_python`` consult before importing anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, SourceLocation, template_chain
from .loader import STRING_TEMPLATE, TemplateRef, TemplateSet
from .nodes import Node
from .policy import ImportPolicy, current_dir, default_policy
from .preprocess import escape_template
from .sourcemap import LineMap
from .traverse import PathError, assign, path_keys
from .yaml_graph import compose, load_graph

if TYPE_CHECKING:
    import yaml

    from .provenance import AnnotatedLine, Provenance
    from .template_blocks import TemplateBlocks


class Config:
    """A loaded config: rendered YAML, node graph, and what can be done with them."""

    def __init__(
        self,
        templates: TemplateSet,
        name: str | None,
        text: str | None,
        variables: dict,
        policy: ImportPolicy | None = None,
    ):
        self._templates = templates
        self._name = name
        self._text = text
        self.template_vars = dict(variables)
        self.policy = policy if policy is not None else default_policy()
        self._line_map: LineMap | None = None
        self._composed: yaml.Node | None = None
        self._blocks: TemplateBlocks | None = None
        #: The places ``set_value`` (``--set``) assigned, as path keys.
        self.assigned_paths: list[tuple[str, ...]] = []
        rendered = templates.render(name, text, self.template_vars)
        self.graph: dict[str, Any] = load_graph(rendered, self.locate)
        #: The rendered YAML, exactly as the templates printed it.
        self.pp: str = rendered

    def variables_read(self) -> set[str] | None:
        """Every variable name the templates of this config read (None: cannot tell)."""
        return self._templates.variables_read(self._name, self._text)

    @property
    def pp_template(self) -> str:
        """:attr:`pp` as a template that renders to itself, to load it back as a config.

        A line that Jinja or the line syntax would read differently is written
        as a Jinja string (see :func:`~forgather.config.preprocess.escape_template`).
        """
        return escape_template(self.pp)

    @property
    def name(self) -> str:
        return self._name or STRING_TEMPLATE

    @property
    def targets(self) -> list[str]:
        """Buildable target names, in file order."""
        return list(self.graph)

    # -- source locations -------------------------------------------------
    def locate(self, line: int | None, column: int = 0) -> SourceLocation | None:
        """The template file and line that produced rendered ``line`` (0-based)."""
        if line is None:
            return None
        if self._line_map is None:
            try:
                self._line_map = self._templates.line_map(
                    self._name, self._text, self.template_vars
                )
            except ConfigError:
                return None
        origin = self._line_map.origin(line, column)
        if origin is None:
            return None
        file_of = self._templates.file_of
        file = file_of(origin.template_id)
        chain = template_chain(((file_of(t), n) for t, n in origin.chain), file)
        return SourceLocation(file, origin.line, chain)

    def locate_node(self, node: Node) -> SourceLocation | None:
        return self.locate(node.line, node.column)

    # -- provenance -------------------------------------------------------
    def why(self, path: str) -> Provenance:
        """Where the value at ``path`` came from (``forgather why PATH``).

        Args:
            path: a target, then steps, as ``--set`` and ``graph`` spell them
                (``main.args.learning_rate``).

        Returns:
            A :class:`~forgather.config.provenance.Provenance`: the value, the
            template file:line that set it (and the include chain to it), the
            earlier lines it overrode, and the templates defining the block it
            is in. ``str()`` of it is what ``forgather why`` prints.

        Raises:
            ConfigError: the path names no place in the graph.
        """
        from .provenance import why

        try:
            return why(
                path,
                graph=self.graph,
                composed=self.composed_yaml(),
                locate=self.locate,
                blocks=self.template_blocks(),
                assigned=self.assigned_paths,
            )
        except PathError as e:
            raise ConfigError(f"{self.name}: {e.path}: {e.reason}") from None

    def annotated_lines(self) -> list[AnnotatedLine]:
        """Each line of :attr:`pp` with the template file:line that produced it.

        Returns:
            ``AnnotatedLine(location, text)`` per rendered line; ``location``
            is None for a line no template line can be found for.
        """
        from .provenance import annotated_lines

        return annotated_lines(self.pp, self.locate)

    def composed_yaml(self) -> yaml.Node | None:
        """:attr:`pp` composed by PyYAML (nodes with marks), for provenance; cached."""
        if self._composed is None:
            self._composed = compose(self.pp)
        return self._composed

    def template_blocks(self) -> TemplateBlocks:
        """The blocks of the templates behind this config (who defines which, super() calls)."""
        if self._blocks is None:
            from .template_blocks import TemplateBlocks

            self._blocks = TemplateBlocks(self._templates, self._name, self._text)
        return self._blocks

    # -- graph operations -------------------------------------------------
    def build(self, target: str | None = None, /, **context_vars: Any) -> Any:
        """Build one target, or all of them as a dict when ``target`` is None.

        Imports and calls what the config names, after :attr:`policy` allowed
        each SPEC (:class:`~forgather.config.RefusedImportError` otherwise).
        """
        return self._build(self.policy, target, context_vars)

    def build_data(self, target: str | None = None, /, **context_vars: Any) -> Any:
        """Build a target that is plain data, importing and calling nothing from the config.

        For what commands that must not run a config read (``meta.yaml``, the
        ``meta`` and ``dynamic_args`` targets): containers, ``!var``, the pure
        builtins (``dict``, ``list``, ``str``, ``len``, ``max`` ...), the
        ``getitem``/``items``/``keys``/``values`` helpers and ``os.path``,
        ``math`` and ``operator`` functions. Anything else is a
        :class:`~forgather.config.RefusedImportError`, raised before importing.
        """
        return self._build(ImportPolicy.data_only(), target, context_vars)

    def _build(self, policy: ImportPolicy, target: str | None, context_vars: dict) -> Any:
        from .sourced_build import SourcedBuilder  # imported on use: `forgather pp` never builds

        context = _BuildContext(self, context_vars)
        builder = SourcedBuilder(self.graph, self.why, self.locate_node, context, policy)
        if target is None:
            return {t: builder.build(v, t) for t, v in self.graph.items()}
        return builder.build(self._target(target), target)

    def to_python(self, target: str | None = None, *, relative_imports: bool = False) -> str:
        """Source of a module whose ``construct(**context_vars)`` builds ``target``."""
        from .codegen import to_python

        if target is not None:
            self._target(target)
        return to_python(
            self.graph,
            target,
            pp_config=self.pp_template,
            source_name=self.name,
            relative_imports=relative_imports,
            locate=self.locate_node,
            policy=self.policy,
        )

    def to_yaml(self) -> str:
        """YAML that loads back into an equivalent graph."""
        from .dump import to_yaml

        return to_yaml(self.graph)

    def set_value(self, path: str, value: Any) -> None:
        """Override the value at a dotted path (``trainer.args.lr``, ``a.layers.0``).

        The path is one that ``walk`` (and so ``graph``) names: keys of
        mappings and call keywords are names; sequence items and positional
        arguments are indices. A new mapping key or keyword is added.

        Args:
            path: a target, then steps separated by ``.``.
            value: a plain Python value.

        Raises:
            ConfigError: the path names no place in the graph.
        """
        try:
            assign(self.graph, path, value)
            self.assigned_paths.append(path_keys(self.graph, path))
        except PathError as e:
            raise ConfigError(f"--set {e.path}: {e.reason}") from None

    def _target(self, target: str) -> Any:
        if target not in self.graph:
            known = ", ".join(self.graph) or "(none)"
            raise ConfigError(f"{self.name}: no target {target!r}; targets: {known}")
        return self.graph[target]


class _BuildContext(dict):
    """A build's ``!var`` values: ``context_vars``, and ``pp_config`` (the config as a
    template) made only when a ``!var`` reads it: ``ls`` and ``pp`` build data
    targets of every config and never use it."""

    def __init__(self, config: Config, context_vars: dict[str, Any]):
        super().__init__(context_vars)
        self._config = config

    def __contains__(self, key: object) -> bool:
        return key == "pp_config" or super().__contains__(key)

    def __missing__(self, key: str) -> Any:
        if key != "pp_config":
            raise KeyError(key)
        value = self[key] = self._config.pp_template
        return value


class ConfigEnvironment:
    """Templates on an ordered search path, loaded into :class:`Config` objects.

    Templates render in Jinja's sandbox. What a config may import when built
    is decided by an :class:`~forgather.config.policy.ImportPolicy` (docs/security.md).

    Args:
        searchpath: directories searched in order for template names.
        global_vars: variables visible to every template.
        allow_imports: module prefixes (``mypkg``, ``other.module``) or
            directories (entries with a ``/``) a config may import from, beyond
            the defaults (``allow_imports:`` in ``meta.yaml``).
        source_dirs: directories holding the user's own Python code (top-level
            modules found there may be imported); default: the current directory.
        trust: allow every import; ``None`` reads ``FORGATHER_TRUST``.
    """

    def __init__(
        self,
        searchpath: list[str | os.PathLike] | None = None,
        global_vars: dict | None = None,
        *,
        allow_imports: Iterable[str] = (),
        source_dirs: Iterable[str | os.PathLike] | None = None,
        trust: bool | None = None,
    ):
        self._templates = TemplateSet([os.fspath(p) for p in searchpath or []], global_vars)
        if source_dirs is None:
            source_dirs = current_dir()
        self.policy = ImportPolicy.default(allow_imports, source_dirs, trust)

    @property
    def searchpath(self) -> list[str]:
        return list(self._templates.searchpath)

    def load(self, name: str, /, **template_vars: Any) -> Config:
        """Render and parse the template ``name`` (e.g. ``"configs/a.yaml"``)."""
        return Config(self._templates, name, None, template_vars, self.policy)

    def load_from_string(self, text: str, /, **template_vars: Any) -> Config:
        """Render and parse a template given as text (it may extend/include others)."""
        main = self._templates.add_string(text)
        return Config(self._templates, None, main, template_vars, self.policy)

    def list_templates(self) -> list[tuple[str, str]]:
        """Every template on the search path as (name, search dir it came from)."""
        return self._templates.list_templates()

    def template_tree(self, name: str) -> TemplateRef:
        """The tree of templates ``name`` extends, includes and imports."""
        return self._templates.template_tree(name)

    def variables_read(self, name: str) -> set[str] | None:
        """Every variable name the template ``name`` and those it uses read (None: cannot tell)."""
        return self._templates.variables_read(name)

    def preprocessed_sources(self, name: str) -> dict[str, str]:
        """Jinja2 source (after preprocessing) of ``name`` and every template it uses.

        A training run keeps these beside its resolved config, so what produced
        the config can be read back even after the templates change.
        """
        sources: dict[str, str] = {}

        def visit(ref: TemplateRef) -> None:
            if ref.path is None or ref.name in sources:
                return
            sources[ref.name] = self._templates.env.loader.get_source(
                self._templates.env, ref.name
            )[0]
            for child in ref.children:
                visit(child)

        visit(self.template_tree(name))
        return sources
