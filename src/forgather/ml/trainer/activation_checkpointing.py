"""Turning on activation (gradient) checkpointing when `args.gradient_checkpointing` asks.

The trainer calls `enable_activation_checkpoint_fn(rank, model)` at setup; the
default is `enable_hf_activation_checkpointing`, the model's own Hugging Face
`gradient_checkpointing_enable` (every generated model has it). A config
passes another function, or this one as a partial with its keyword
arguments, as the original Forgather's configs do.

The decision a reader may question: a model without the Hugging Face method
is an error, not a warning. The setting was asked for to fit the run in
memory; training on without it fails later with an out-of-memory error far
from its cause.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from .cpu_bf16 import recompute_context

__all__ = ["enable_hf_activation_checkpointing"]

logger = logging.getLogger(__name__)


def enable_hf_activation_checkpointing(
    rank: int, module: nn.Module, gradient_checkpointing_kwargs: dict[str, Any] | None = None
) -> None:
    """Call `module.gradient_checkpointing_enable` (non-reentrant checkpoints by default).

    Args:
        rank: This process's rank (only rank 0 logs).
        module: The model.
        gradient_checkpointing_kwargs: Passed on to `torch.utils.checkpoint`;
            None: `{"use_reentrant": False}`. Non-reentrant checkpoints get
            `context_fn=cpu_bf16.recompute_context` unless given one, so the
            recomputation runs as the forward ran.

    Raises:
        TypeError: The model has no `gradient_checkpointing_enable`.
    """
    renamed = getattr(module, "activation_checkpointing_enable", None)
    enable = getattr(module, "gradient_checkpointing_enable", None)
    if renamed is None and enable is None:
        raise TypeError(
            f"gradient_checkpointing=True, but {type(module).__name__} has no "
            "gradient_checkpointing_enable(); pass enable_activation_checkpoint_fn to the trainer"
        )
    if rank == 0:
        logger.info("enabling activation checkpointing")
    kwargs = dict(gradient_checkpointing_kwargs or {})
    if gradient_checkpointing_kwargs is None:
        kwargs["use_reentrant"] = False
    if not kwargs.get("use_reentrant", True) and "context_fn" not in kwargs:
        # The trainer's float32-GEMM mode (cpu_bf16.py) around the recomputation too.
        kwargs["context_fn"] = recompute_context
    if renamed is not None:  # transformers 5.2x's name (the old one warns)
        renamed(activation_checkpointing_kwargs=kwargs)
    else:
        enable(gradient_checkpointing_kwargs=kwargs)
