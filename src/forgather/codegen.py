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

The original's own model template, ``modelsrc/templates/hf_causal.py``
(recognised by its name and its classes), was written for transformers 4 and
breaks on transformers 5 (``rope_scaling`` became ``rope_parameters``; its
attribute proxy recurses; a loaded checkpoint is initialised again). Asked for
it, ``generate_code`` renders Forgather's own template of the same contract
instead (``forgather/compat_templates/hf_causal.py.jinja``: same arguments,
same classes and behaviour) and logs one line saying so;
``FORGATHER_COMPAT_TEMPLATES=0`` renders the original as it is.

Decision a reader may question: templates render with the config language's
own template engine (line statements, the sandbox, an undefined variable is
an error unless the template gives a ``default``), not a second engine, so a
code template is written exactly like a config template.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from forgather.graph_encoder import NamePolicy

logger = logging.getLogger(__name__)

#: Forgather's templates standing in for the original's, by the original's file name.
COMPAT_TEMPLATES = {"hf_causal.py": "hf_causal.py.jinja"}
#: Text every version of the original's hf_causal.py has (its classes and their proxy).
_HF_CAUSAL_MARKS = (
    "class DynamicCausalLMConfig(",
    "class DynamicCasualLM(",
    "def construct_model(",
    "v_layers",
    "for var, has_default, default in variables",
)
COMPAT_VARIABLE = "FORGATHER_COMPAT_TEMPLATES"

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


def compat_template(template_name: str, dirs: list[str]) -> str | None:
    """Forgather's text for the original's template ``template_name`` found in ``dirs``; None: use it.

    Only the original's ``hf_causal.py`` is replaced, recognised by its name
    and its contents, unless ``FORGATHER_COMPAT_TEMPLATES`` is ``0``.
    """
    if os.path.basename(template_name) not in COMPAT_TEMPLATES:
        return None
    if os.environ.get(COMPAT_VARIABLE, "").strip().lower() in ("0", "false", "no", "off"):
        return None
    found = next((Path(d, template_name) for d in dirs if Path(d, template_name).is_file()), None)
    if found is None:
        return None
    text = found.read_text(encoding="utf-8", errors="replace")
    if not all(mark in text for mark in _HF_CAUSAL_MARKS):
        return None
    ours = Path(__file__).resolve().parent / "compat_templates"
    ours = ours / COMPAT_TEMPLATES[os.path.basename(template_name)]
    logger.warning(
        "%s: rendering Forgather's transformers 5 version of this template (%s=0: the original)",
        found,
        COMPAT_VARIABLE,
    )
    return ours.read_text(encoding="utf-8")


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
        replacement = compat_template(template_name, dirs)
        if replacement is None:
            return templates.render(template_name, None, variables).strip()
        template_str = replacement
    source = templates.add_string(template_str or DEFAULT_CODE_TEMPLATE)
    return templates.render(None, source, variables).strip()
