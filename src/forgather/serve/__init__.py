"""Serving: an OpenAI-compatible HTTP server over a continuous-batching scheduler.

    from forgather.serve import ServerSettings, serve
    serve(ServerSettings(model_path="output_models/tiny_llama", port=8000))

    from forgather.serve import BatchScheduler, SamplingParams       # no HTTP
    scheduler = BatchScheduler(model, tokenizer, max_batch_size=16)

The command line is ``forgather inf server`` / ``forgather inf client``
(``forgather.cli.inference``); docs/serving.md describes the API, batching
and vLLM.

Decision a reader may question: names are resolved lazily (PEP 562), so the
terminal client (``forgather.serve.client``, which needs only ``openai``)
starts without importing torch, transformers or FastAPI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and IDEs; never executed at run time
    from forgather.serve.app import create_app
    from forgather.serve.errors import APIError
    from forgather.serve.loading import context_length, load_for_serving, newest_checkpoint
    from forgather.serve.prompts import ServedModel
    from forgather.serve.sampling import SamplingParams
    from forgather.serve.scheduler import (
        BatchScheduler,
        GenerationRequest,
        Overloaded,
        SequenceOutput,
    )
    from forgather.serve.server import (
        ServerSettings,
        ServerThread,
        load_served_model,
        serve,
        wrap_model,
    )

# public name -> module under forgather.serve defining it
_LAZY = {
    "create_app": "app",
    "APIError": "errors",
    "context_length": "loading",
    "load_for_serving": "loading",
    "newest_checkpoint": "loading",
    "ServedModel": "prompts",
    "SamplingParams": "sampling",
    "BatchScheduler": "scheduler",
    "GenerationRequest": "scheduler",
    "Overloaded": "scheduler",
    "SequenceOutput": "scheduler",
    "ServerSettings": "server",
    "ServerThread": "server",
    "load_served_model": "server",
    "serve": "server",
    "wrap_model": "server",
}

__all__ = [
    "APIError",
    "BatchScheduler",
    "GenerationRequest",
    "Overloaded",
    "SamplingParams",
    "SequenceOutput",
    "ServedModel",
    "ServerSettings",
    "ServerThread",
    "context_length",
    "create_app",
    "load_for_serving",
    "load_served_model",
    "newest_checkpoint",
    "serve",
    "wrap_model",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'forgather.serve' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"forgather.serve.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
