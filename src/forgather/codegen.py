"""``generate_code``: Python source from config nodes through a Jinja code template.

The original Forgather's model projects generate their model's source file
with it, as a ``!meta`` node (it receives the nodes unbuilt)::

    model_code_generator: !meta:forgather.codegen:generate_code
        searchpath: "{{ joinpath(forgather_dir, 'modelsrc', 'templates') }}"
        template_name: "hf_causal.py"
        obj: *model_factory
        model_type: "my-model"            # any other keyword reaches the template

The template sees ``imports`` (``(module, name)`` pairs), ``definitions``
(statements), ``main_body`` (the expression building ``obj``), ``variables``
(``(name, has_default, default)`` of the ``!var`` parameters) and
``dynamic_imports`` (empty), plus the extra keywords. The pieces come from
our code generator (:func:`forgather.config.codegen.code_parts`), so the
source builds what building the nodes builds.

Decision a reader may question: templates render with the config language's
own template engine (line statements, the sandbox, an undefined variable is
an error unless the template gives a ``default``), not a second engine, so a
code template is written exactly like a config template.
"""

from __future__ import annotations

import os
from typing import Any

from forgather.graph_encoder import NamePolicy

#: The template used when none is named: a module defining ``construct(...)``.
DEFAULT_CODE_TEMPLATE = """\
## The default code template: a module whose factory function builds the nodes.
-- set factory_name = factory_name | default("construct")
-- for module, name in imports:
from {{ module }} import {{ name }}
-- endfor


def {{ factory_name }}(
-- for var, has_default, default in variables:
    {{ var }}{% if has_default %}={{ repr(default) }}{% endif %},
-- endfor
-- if relaxed_kwargs is defined:
    **kwargs,
-- endif
):
    {{ definitions | indent(4) }}

    return {{ main_body | indent(4) }}
"""


def _nodes(obj: Any) -> Any:
    """The nodes to write: a node, a graph (mapping), or a loaded config's graph."""
    graph = getattr(obj, "graph", None)  # forgather.config.Config, or Project.config
    return graph if isinstance(graph, dict) else obj


def _plain(value: Any) -> Any:
    """A template argument as plain data: ``!meta`` passes containers as unbuilt nodes."""
    from forgather.config.nodes import Container

    if isinstance(value, Container):
        return value.assemble([_plain(v) for _, v in value.children()])
    return value


def generate_code(
    obj: Any,
    template_name: str | None = None,
    template_str: str | None = None,
    searchpath: str | os.PathLike | list[str | os.PathLike] | None = ".",
    env: Any = None,
    name_policy: NamePolicy | str | None = None,
    **kwargs: Any,
) -> str:
    """Render a code template with Python source generated from ``obj``.

    Args:
        obj: a node (what ``!meta`` passes), a graph (target -> node) or a
            loaded :class:`~forgather.config.Config`.
        template_name: a template on ``searchpath``; it wins over ``template_str``.
        template_str: the template's text; neither given: a module defining
            ``construct()`` (``factory_name`` renames it; ``relaxed_kwargs``
            adds ``**kwargs``).
        searchpath: directories holding templates (missing ones are skipped).
        env: a Jinja2 environment to render with instead (its own rules apply).
        name_policy: accepted for compatibility (see :mod:`forgather.graph_encoder`).
        **kwargs: more variables for the template.

    Returns:
        The rendered source, without leading and trailing blank space.

    Raises:
        ConfigError: a template error, or a node that cannot be written as source.
    """
    from forgather.config.codegen import code_parts
    from forgather.config.loader import TemplateSet

    NamePolicy.parse(name_policy)
    variables = {**{k: _plain(v) for k, v in kwargs.items()}, **code_parts(_nodes(obj))}
    if env is not None:
        if template_name is not None:
            template = env.get_template(template_name)
        else:
            template = env.from_string(template_str or DEFAULT_CODE_TEMPLATE)
        return template.render(**variables).strip()
    if searchpath is None:
        searchpath = []
    elif isinstance(searchpath, (str, os.PathLike)):
        searchpath = [searchpath]
    dirs = [os.fspath(d) for d in searchpath if os.path.isdir(d)]
    templates = TemplateSet(dirs)
    if template_name is not None:
        return templates.render(template_name, None, variables).strip()
    source = templates.add_string(template_str or DEFAULT_CODE_TEMPLATE)
    return templates.render(None, source, variables).strip()
