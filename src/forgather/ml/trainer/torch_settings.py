"""Process-wide torch settings a run's arguments ask for, and the contexts a run executes in.

`TrainingArguments` fields from the original Forgather that set torch itself
rather than the loop: anomaly detection, float32 matmul precision, the dynamo
recompile limit and activation budget (`apply_global_settings`, when the
trainer is built, as the original did); the SDPA backends and activation
offloading (`run_context`, around `train()` and `evaluate()`); and the dtype
a `model_init` builds the model in (`model_dtype_context`).

The decision a reader may question: the global settings are applied when the
trainer is constructed, not undone afterwards. They are process-wide torch
state, and a config that asks for them means the whole run.
"""

from __future__ import annotations

import contextlib
import logging
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import torch

__all__ = ["apply_global_settings", "model_dtype_context", "run_context", "torch_dtype"]

logger = logging.getLogger(__name__)

_SDPA = ("math", "flash", "efficient", "cudnn")


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    """`torch.bfloat16` from "bfloat16" or "torch.bfloat16" (or a dtype, unchanged)."""
    if isinstance(name, torch.dtype):
        return name
    value = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"{name!r} is not a torch dtype (e.g. 'bfloat16', 'float32')")
    return value


def apply_global_settings(args: Any) -> None:
    """Anomaly detection, matmul precision and dynamo limits from `args` (when set)."""
    if getattr(args, "detect_anomaly", False):
        logger.warning("detect_anomaly: autograd anomaly detection is on (slow)")
        torch.autograd.set_detect_anomaly(True)
    precision = getattr(args, "float32_matmul_precision", None)
    if precision is not None:
        torch.set_float32_matmul_precision(precision)
    limit = getattr(args, "dynamo_recompile_limit", None)
    if limit:
        torch._dynamo.config.recompile_limit = limit
    budget = getattr(args, "activation_memory_budget", None)
    if budget:
        torch._functorch.config.activation_memory_budget = budget


def _sdpa_backends(spec: list[str] | str) -> list:
    from torch.nn.attention import SDPBackend

    names = [spec] if isinstance(spec, str) else list(spec)
    table = {
        "math": SDPBackend.MATH,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
    }
    unknown = [n for n in names if n not in table]
    if unknown:
        raise ValueError(f"sdpa_backend: unknown {unknown}; use some of {_SDPA}")
    return [table[n] for n in names]


def run_context(args: Any) -> AbstractContextManager:
    """The SDPA backend choice and activation offloading `args` ask for, as one context."""
    stack = ExitStack()
    backend = getattr(args, "sdpa_backend", None)
    if backend:
        from torch.nn.attention import sdpa_kernel

        priority = bool(getattr(args, "sdpa_set_priority", False))
        stack.enter_context(sdpa_kernel(_sdpa_backends(backend), set_priority=priority))
    if getattr(args, "enable_activation_offloading", False):
        pin = torch.cuda.is_available()
        stack.enter_context(torch.autograd.graph.save_on_cpu(pin_memory=pin))
    return stack


@contextlib.contextmanager
def model_dtype_context(args: Any):
    """Build tensors in `args.default_dtype` (when set) inside the block."""
    name = getattr(args, "default_dtype", None)
    if not name:
        yield
        return
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype(name))
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
