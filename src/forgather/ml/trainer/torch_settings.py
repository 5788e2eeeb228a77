"""Process-wide torch settings a run's arguments ask for, and the contexts a run executes in.

`TrainingArguments` fields that set torch itself rather than the loop: CPU
threads (`threads.py`) and, from the original Forgather, anomaly detection,
float32 matmul precision, the dynamo recompile limit and activation budget
(`apply_global_settings`, when the trainer is built, as the original did); the SDPA backends and activation
offloading (`run_context`, around `train()` and `evaluate()`); the dtype
a `model_init` builds the model in (`model_dtype_context`); and whether
`torch_compile="auto"` compiles (`compile_decision`).

The decision a reader may question: the global settings are applied when the
trainer is constructed, not undone afterwards. They are process-wide torch
state, and a config that asks for them means the whole run.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any

import torch

from .threads import configure_threads

__all__ = [
    "AUTO_COMPILE_MIN_STEPS",
    "apply_global_settings",
    "compile_decision",
    "compiler_available",
    "model_dtype_context",
    "planned_steps",
    "run_context",
    "torch_dtype",
]

logger = logging.getLogger(__name__)

_SDPA = ("math", "flash", "efficient", "cudnn")

# `torch_compile="auto"` compiles runs of at least this many optimizer steps. Measured
# on llama_4m (CPU, docs/training.md "Compiling"): compiling forward and backward
# costs about as much as the saving of several hundred steps.
AUTO_COMPILE_MIN_STEPS = 1000


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    """`torch.bfloat16` from "bfloat16" or "torch.bfloat16" (or a dtype, unchanged)."""
    if isinstance(name, torch.dtype):
        return name
    value = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"{name!r} is not a torch dtype (e.g. 'bfloat16', 'float32')")
    return value


def apply_global_settings(args: Any) -> None:
    """CPU threads, anomaly detection, matmul precision and dynamo limits from `args`."""
    configure_threads(getattr(args, "torch_threads", None))
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


def planned_steps(args: Any, dataset_length: int | None) -> int:
    """Optimizer steps a run will take, known before its DataLoader exists.

    Args:
        args: The run's `TrainingArguments`.
        dataset_length: `len(train_dataset)`, or None for a dataset without a length
            (`args.epoch_train_steps` batches per epoch then, as `total_steps`).
    """
    if args.max_steps > 0:
        return args.max_steps
    if dataset_length is None:
        batches = args.epoch_train_steps
    else:
        batches = math.ceil(dataset_length / args.per_device_train_batch_size)
    return max(1, math.ceil(args.num_train_epochs * batches / args.gradient_accumulation_steps))


def compiler_available(device_type: str) -> bool:
    """Whether inductor (torch's default compile backend) can generate code for `device_type`.

    CPU needs a C++ compiler (`CXX`, else g++, c++ or clang++), CUDA needs Triton;
    other devices are not compiled automatically.
    """
    try:
        import torch._dynamo

        if not torch._dynamo.is_dynamo_supported():
            return False
    except ImportError:
        return False
    if device_type == "cpu":
        names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
        return any(name and shutil.which(name) for name in names)
    if device_type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    return False


def compile_decision(
    setting: bool | str,
    steps: int,
    compilable: bool | Callable[[], bool],
    min_steps: int = AUTO_COMPILE_MIN_STEPS,
) -> bool:
    """Whether a run compiles its model.

    Args:
        setting: `TrainingArguments.torch_compile`: True or False decide (as in
            Hugging Face's); "auto" compiles when the run is long enough to repay it.
        steps: The run's optimizer steps (`planned_steps`).
        compilable: Whether the backend can compile on the run's device
            (`compiler_available`, for the default backend); a callable is
            asked only for a run long enough (checking imports dynamo: seconds).
        min_steps: The shortest run "auto" compiles.
    """
    if setting != "auto":
        return bool(setting)
    if steps < min_steps:
        return False
    return bool(compilable() if callable(compilable) else compilable)
