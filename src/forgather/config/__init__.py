"""The Forgather configuration language (shared/LANGUAGE.md).

A pipeline of stages, each a module with a narrow input and output::

    preprocess.py   template text -> Jinja2 source (same lines)
    loader.py       search path, sub-templates, rendering -> YAML text
    yaml_graph.py   YAML text -> node graph (nodes.py)
    build.py        node graph -> Python objects
    codegen.py      node graph -> Python source (construct())
    dump.py         node graph -> YAML

``environment.py`` is the facade over them. This package imports only
jinja2, yaml and the standard library: loading a config never imports torch.
"""

from .environment import Config, ConfigEnvironment
from .errors import (
    ArgumentError,
    ConfigError,
    CycleError,
    MissingVariableError,
    SourceLocation,
    SpecError,
    TemplateError,
    TemplateNotFoundError,
    UndefinedVariableError,
    YamlError,
)
from .loader import TemplateRef
from .preprocess import preprocess

_LAZY = {"check", "to_dot", "to_mermaid"}  # forgather.config.inspection, imported on use


def __getattr__(name: str):
    if name in _LAZY:
        from . import inspection

        return getattr(inspection, name)
    raise AttributeError(f"module 'forgather.config' has no attribute {name!r}")


__all__ = [
    "ArgumentError",
    "Config",
    "ConfigEnvironment",
    "ConfigError",
    "CycleError",
    "MissingVariableError",
    "SourceLocation",
    "SpecError",
    "TemplateError",
    "TemplateNotFoundError",
    "TemplateRef",
    "UndefinedVariableError",
    "YamlError",
    "check",
    "preprocess",
    "to_dot",
    "to_mermaid",
]
