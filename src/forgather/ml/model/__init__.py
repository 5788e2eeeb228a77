"""Model code generation: from a builder to a standalone Hugging Face model directory.

    from forgather.ml.model import build_model, load_model, write_model

    model = build_model("output_models/tiny_llama", builder_source)   # write + instantiate
    model = load_model("output_models/tiny_llama")                    # later, with weights

``builder_source`` defines ``construct(**hyperparameters)`` returning
``DecoderParts`` from ``modelsrc/transformer/causal_lm.py``; Forgather
generates it from a model config (``Config.to_python(..., relative_imports=True)``).

Decision a reader may question: names are resolved lazily (PEP 562), so
importing this package for :func:`modelsrc_dir` or the plans does not load
transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forgather._lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; never executed at run time
    from forgather.ml.model.config_bridge import builder_source, modelsrc_searchpath
    from forgather.ml.model.inspect import describe_model, parameter_counts, run_model_test
    from forgather.ml.model.loading import build_model, has_weights, load_model
    from forgather.ml.model.plans import DEFAULT_PP_PLAN, DEFAULT_TP_PLAN
    from forgather.ml.model.sources import modelsrc_dir
    from forgather.ml.model.writer import WriteResult, write_model

_LAZY = {
    "build_model": "loading",
    "has_weights": "loading",
    "load_model": "loading",
    "write_model": "writer",
    "WriteResult": "writer",
    "modelsrc_dir": "sources",
    "DEFAULT_TP_PLAN": "plans",
    "DEFAULT_PP_PLAN": "plans",
    "builder_source": "config_bridge",
    "modelsrc_searchpath": "config_bridge",
    "describe_model": "inspect",
    "parameter_counts": "inspect",
    "run_model_test": "inspect",
}

__all__ = [
    "DEFAULT_PP_PLAN",
    "DEFAULT_TP_PLAN",
    "WriteResult",
    "build_model",
    "builder_source",
    "describe_model",
    "has_weights",
    "load_model",
    "modelsrc_dir",
    "modelsrc_searchpath",
    "parameter_counts",
    "run_model_test",
    "write_model",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
