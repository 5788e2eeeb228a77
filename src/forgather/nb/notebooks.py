"""Show projects, configs and code in a notebook: the original Forgather's ``nb`` helpers.

    import forgather.nb.notebooks as nb
    nb.display_project_index(show_available_templates=True)
    nb.display_config(config_template="train.yaml", show_pp_config=True)
    nb.display_codeblock("yaml", proj.pp_config, "### Rendered config")
    nb.display_meta(proj.meta)

Each ``display_*`` has a ``render_*`` twin returning the Markdown text.

Decision a reader may question: IPython is optional. Inside IPython the
Markdown is displayed rendered; anywhere else it is printed as plain text,
so the same notebook cells work in a script or a test.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "display_codeblock",
    "display_config",
    "display_markdown",
    "display_meta",
    "display_project_index",
    "render_codeblock",
    "render_config",
    "render_meta",
    "render_project_index",
    "show_codeblock",
]


def display_markdown(text: str) -> None:
    """Display Markdown (rendered inside IPython, printed elsewhere)."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
        return
    if get_ipython() is None:
        print(text)
    else:
        display(Markdown(text))


def render_codeblock(language: str, source: Any, header: str | None = None) -> str:
    """A fenced code block (``source`` is ``str()``-ed), after an optional header line."""
    head = f"{header}\n" if header is not None else ""
    return f"{head}```{language}\n{source}\n```\n"


def display_codeblock(language: str, source: Any, header: str | None = None) -> None:
    """Display ``source`` as a fenced code block in ``language``."""
    display_markdown(render_codeblock(language, source, header))


show_codeblock = display_codeblock  # the original's older name


def render_meta(meta: Any, title: str = "") -> str:
    """A project's ``meta.yaml`` values and search path, as Markdown."""
    lines = [title] if title else []
    lines.append(f"Meta Config: [{meta.meta_path}]({meta.meta_path})\n")
    lines += [f"- {key}: {value}" for key, value in meta.as_dict().items() if key != "searchpath"]
    lines.append("\nTemplate Search Paths:")
    lines += [f"- [{path}]({path})" for path in meta.searchpath]
    return "\n".join(lines) + "\n"


def display_meta(meta: Any, title: str = "") -> None:
    """Display a project's meta values (``proj.meta``)."""
    display_markdown(render_meta(meta, title))


def render_project_index(
    project_dir: str | os.PathLike = ".", /, show_available_templates: bool = False
) -> str:
    """A project's README, name, description and configs (and its templates), as Markdown."""
    from forgather.project import Project

    project = Project.open(project_dir)
    meta = project.meta
    parts = []
    readme = os.path.join(meta.project_dir, "README.md")
    if os.path.isfile(readme):
        with open(readme, encoding="utf-8") as f:
            parts.append(f.read().rstrip() + "\n")
    parts.append(f'#### Project Directory: "{meta.project_dir}"\n')
    parts.append(render_meta(meta, "## Meta Config\n"))
    configs = (
        [
            f"- [{name}]({os.path.join(meta.searchdir[0], meta.config_prefix, name)})"
            + (" (default)" if name == meta.default_config else "")
            for name in project.config_names()
        ]
        if meta.searchdir
        else []
    )
    parts.append("## Available Configurations\n" + "\n".join(configs) + "\n")
    if show_available_templates:
        listed = [
            f"- [{name}]({os.path.join(directory, name)})"
            for name, directory in project.environment.list_templates()
        ]
        parts.append("## Available Templates\n" + "\n".join(listed) + "\n")
    return "\n".join(parts)


def display_project_index(project_dir: str | os.PathLike = ".", /, **kwargs: Any) -> None:
    """Display a project's index (``show_available_templates=True`` lists every template)."""
    display_markdown(render_project_index(project_dir, **kwargs))


def render_config(
    project_dir: str | os.PathLike = ".",
    /,
    config_template: str = "",
    show_pp_config: bool = False,
    show_loaded_config: bool = False,
    show_generated_code: bool = False,
    pp_first: bool = False,
    **kwargs: Any,
) -> str:
    """A config's templates, rendered YAML and generated code, as Markdown.

    Args:
        project_dir: the project.
        config_template: the config (``""``: the default).
        show_pp_config: include the rendered YAML.
        show_loaded_config: include the node graph as YAML.
        show_generated_code: include the Python that builds ``main``.
        pp_first: put the rendered YAML first.
        **kwargs: template variables.
    """
    from forgather.project import Project

    project = Project(config_template or None, project_dir, **kwargs)
    config = project.config
    tree = project.environment.template_tree(project.template_name(project.config_name))
    lines = [f"## Config: {project.config_name}\n", "### Templates\n"]

    def visit(ref: Any, level: int) -> None:
        lines.append(f"{'    ' * level}- [{ref.name}]({ref.path})")
        for child in ref.children:
            visit(child, level + 1)

    visit(tree, 0)
    text = "\n".join(lines) + "\n\n"
    pp = render_codeblock("yaml", config.pp, "### Rendered Config")
    if show_pp_config and pp_first:
        text = pp + text
    elif show_pp_config:
        text += pp
    if show_loaded_config:
        text += render_codeblock("yaml", config.to_yaml(), "### Loaded Config")
    if show_generated_code and "main" in config.graph:
        text += render_codeblock("python", config.to_python("main"), "### Generated Code")
    return text


def display_config(project_dir: str | os.PathLike = ".", /, **kwargs: Any) -> None:
    """Display a config (see :func:`render_config` for the options)."""
    display_markdown(render_config(project_dir, **kwargs))
