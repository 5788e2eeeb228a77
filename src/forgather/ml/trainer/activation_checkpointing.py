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
            None: `{"use_reentrant": False}`.

    Raises:
        TypeError: The model has no `gradient_checkpointing_enable`.
    """
    enable = getattr(module, "gradient_checkpointing_enable", None)
    if enable is None:
        raise TypeError(
            f"gradient_checkpointing=True, but {type(module).__name__} has no "
            "gradient_checkpointing_enable(); pass enable_activation_checkpoint_fn to the trainer"
        )
    if rank == 0:
        logger.info("enabling activation checkpointing")
    if gradient_checkpointing_kwargs is None:
        gradient_checkpointing_kwargs = {"use_reentrant": False}
    enable(gradient_checkpointing_kwargs=gradient_checkpointing_kwargs)
