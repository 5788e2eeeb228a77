"""The two hooks a model template needs from this package.

* ``!meta:forgather.ml.model:builder_source [*model_parts]`` turns the model's
  node graph into the builder's Python source (``construct()`` with relative
  imports), which :func:`~forgather.ml.model.build_model` writes into
  ``modeling_<name>.py``;
* ``submodule_searchpath: !call:forgather.ml.model:modelsrc_searchpath`` lets
  ``.module:Name`` SPECs resolve against the shipped components.

Decision a reader may question: this module imports ``forgather.config``
(lazily, inside the function), the one place in ``forgather.ml`` that does.
A ``!meta`` callee receives unbuilt config nodes by definition, and turning
nodes into source is the config package's code generator; re-implementing it
here would be worse than the dependency.
"""

from __future__ import annotations

from typing import Any

from .sources import modelsrc_dir


def modelsrc_searchpath() -> list[str]:
    """``[modelsrc/transformer]`` as strings, for ``submodule_searchpath``."""
    return [str(modelsrc_dir())]


def builder_source(parts_node: Any) -> str:
    """Python source of a module whose ``construct(**hyperparameters)`` builds ``parts_node``.

    Args:
        parts_node: The unbuilt node of the model's ``DecoderParts`` (passed
            by a ``!meta`` call); its ``!var`` become ``construct``'s parameters.

    Returns:
        Module source with ``.module:Name`` SPECs written as relative imports.
    """
    from forgather.config.codegen import to_python

    return to_python({"model_parts": parts_node}, "model_parts", relative_imports=True)
