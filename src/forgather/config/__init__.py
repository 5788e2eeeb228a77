"""The Forgather configuration language (shared/LANGUAGE.md).

A pipeline of stages, each a module with a narrow input and output::

    preprocess.py   template text -> Jinja2 source (same lines)
    loader.py       search path, sub-templates, rendering -> YAML text
    yaml_graph.py   YAML text -> node graph (nodes.py)
    build.py        node graph -> Python objects
    codegen.py      node graph -> Python source (construct())
    dump.py         node graph -> YAML

``environment.py`` is the facade over them; ``policy.py`` decides what a
config may import (docs/security.md). This package imports only jinja2, yaml
and the standard library: loading a config never imports torch.
"""

from forgather._lazy import lazy_exports

from .environment import Config, ConfigEnvironment
from .errors import (
    ArgumentError,
    ConfigError,
    CycleError,
    MissingVariableError,
    RefusedImportError,
    SandboxError,
    SourceLocation,
    SpecError,
    TemplateError,
    TemplateNotFoundError,
    UndefinedVariableError,
    YamlError,
)
from .loader import TemplateRef
from .policy import ImportPolicy
from .preprocess import escape_template, preprocess

# The inspection passes load on use: `pp` and `targets` never need them.
# So do the provenance types, which `why` and `pp --annotate` return.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "check": "inspection",
        "to_dot": "inspection",
        "to_mermaid": "inspection",
        "AnnotatedLine": "provenance",
        "Provenance": "provenance",
        "BlockDefinition": "template_blocks",
    },
)

__all__ = [
    "AnnotatedLine",
    "ArgumentError",
    "BlockDefinition",
    "Config",
    "ConfigEnvironment",
    "ConfigError",
    "CycleError",
    "ImportPolicy",
    "MissingVariableError",
    "Provenance",
    "RefusedImportError",
    "SandboxError",
    "SourceLocation",
    "SpecError",
    "TemplateError",
    "TemplateNotFoundError",
    "TemplateRef",
    "UndefinedVariableError",
    "YamlError",
    "check",
    "escape_template",
    "preprocess",
    "to_dot",
    "to_mermaid",
]
