"""``from_project``: build targets of another project from inside a config.

    model_dict: !call:forgather:from_project
        project_dir: "{{ joinpath(workspace_root, 'models', 'llama') }}"
        config_template: "4M.yaml"
        targets: [ "pretrained_tokenizer", "model" ]
        pp_kwargs: { output_dir: "..." }     # template variables of the sub-project
        model_constructor_args: { ... }      # !var values of its build

This is the original Forgather's name and call signature, on our
:class:`~forgather.project.Project` API.

Decision a reader may question: the sub-project is loaded with *its own*
import policy (its ``meta.yaml``'s ``allow_imports``, its project and
workspace as own code, ``FORGATHER_TRUST`` for ``--trust``), exactly as if it
were built on its own: a sub-project's ``meta.yaml`` is as much the user's as
the caller's, and the caller's extra permissions do not leak into it.
"""

from __future__ import annotations

import os
from typing import Any


def from_project(
    project_dir: str | os.PathLike,
    config_template: str | None = None,
    targets: str | list[str] = "",
    pp_debug: bool = False,
    pp_kwargs: dict[str, Any] | None = None,
    **config_kwargs: Any,
) -> Any:
    """Build targets of a config of another project.

    Args:
        project_dir: the other project's directory (relative: to the current directory).
        config_template: its config name; ``None`` or ``""``: its default config.
        targets: one target name (``""``: ``main``), returned as the object; or a
            list of names, returned as a dict (names that are not targets are left out).
        pp_debug: print what is loaded and the rendered YAML.
        pp_kwargs: template variables for its templates.
        **config_kwargs: context variables (``!var`` values) for its build.

    Returns:
        The built target, or a dict of the built targets.
    """
    from forgather.project.project import Project

    project = Project(config_template or None, project_dir, **(pp_kwargs or {}))
    if pp_debug:
        print(f"Loading sub-project: {project_dir}:{config_template}")
        print(f"targets={targets!r}")
        print(f"config_kwargs={config_kwargs!r}")
        print(f"pp_kwargs={pp_kwargs!r}")
        print(project.pp_config)
    if isinstance(targets, (list, tuple)):
        return project(list(targets), **config_kwargs)
    return project(targets, **config_kwargs)
