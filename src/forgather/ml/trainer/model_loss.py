"""`ModelLoss`: a batch's loss computed outside the model, from its logits or hidden states.

The original Forgather's trainers take `compute_loss_func(logits, labels)`
(its `CausalLoss`) and `fused_loss_factory(output_embeddings)` (its
`LinearCrossEntropyLoss`, which takes the final hidden states and never
materialises the logits). Hugging Face style models compute their own loss
from `labels`; here the model is called without them and the loss function
gets what the model returns.

Hidden states come from, in order: a model declaring `can_return_hidden_states`
(called with `return_hidden_states=True`, the original's convention), or the
Hugging Face base model (`model.base_model`, whose `last_hidden_state` is what
the output embeddings are applied to). A model with neither falls back to the
logits and `compute_loss_func` (or plain cross-entropy), with one warning.

The decision a reader may question: the fused path needs the head to be a
plain linear map of `last_hidden_state`. Models that scale or soft-cap their
logits after the head would get a different loss from it; none of the
generated models do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .step_tokens import IGNORE_INDEX

__all__ = ["ModelLoss", "logits_of"]

logger = logging.getLogger(__name__)


def logits_of(outputs: Any) -> torch.Tensor:
    """The logits in a model's outputs: a tensor, a dict's or object's `logits`, a tuple's first."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict):
        return outputs["logits"]
    if isinstance(outputs, tuple | list):
        return outputs[0]
    return outputs.logits


def _hidden_of(outputs: Any) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, dict):
        return outputs["last_hidden_state"]
    if isinstance(outputs, tuple | list):
        return outputs[0]
    return outputs.last_hidden_state


def _causal_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    vocab = logits.shape[-1]
    return F.cross_entropy(
        logits[..., :-1, :].reshape(-1, vocab).float(),
        labels[..., 1:].reshape(-1),
        ignore_index=IGNORE_INDEX,
    )


def _unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP wrapper (its base model is reached through it)."""
    return getattr(model, "module", model)


class ModelLoss:
    """The loss of a batch from `compute_loss_func` or `fused_loss_factory` (module docstring).

    Args:
        compute_loss_func: `fn(logits, labels) -> loss`, the mean over target tokens.
        fused_loss_factory: `factory(output_embeddings) -> fn(hidden_states, labels)`.
    """

    def __init__(
        self,
        compute_loss_func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        fused_loss_factory: Callable[[nn.Module], Callable[..., torch.Tensor]] | None = None,
    ) -> None:
        self.compute_loss_func = compute_loss_func
        self.fused_loss_factory = fused_loss_factory
        self._fused: Callable[..., torch.Tensor] | None = None
        self._fused_checked = False

    @property
    def external(self) -> bool:
        """True when the loss is computed here rather than by the model."""
        return self.compute_loss_func is not None or self.fused_loss_factory is not None

    def __call__(self, model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        if not isinstance(inputs, dict) or "labels" not in inputs:
            raise ValueError("compute_loss_func needs batches as dicts with 'labels'")
        labels = inputs["labels"]
        rest = {k: v for k, v in inputs.items() if k != "labels"}
        fused = self._fused_loss(model)
        if fused is not None:
            return fused(self._hidden_states(model, rest), labels)
        logits = logits_of(model(**rest))
        if self.compute_loss_func is None:
            return _causal_cross_entropy(logits, labels)
        return self.compute_loss_func(logits, labels)

    def _fused_loss(self, model: nn.Module) -> Callable[..., torch.Tensor] | None:
        if self._fused_checked:
            return self._fused
        self._fused_checked = True
        if self.fused_loss_factory is None:
            return None
        inner = _unwrap(model)
        head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
        base = getattr(inner, "base_model", inner)
        # The base model is reached around a DDP wrapper only by skipping its gradient sync.
        can = getattr(inner, "can_return_hidden_states", False) or (
            base is not inner and inner is model
        )
        if head is None or not can:
            logger.warning(
                "fused_loss_factory: %s gives no hidden states and output embeddings; "
                "computing the loss from the logits",
                type(inner).__name__,
            )
            return None
        self._fused = self.fused_loss_factory(head)
        return self._fused

    @staticmethod
    def _hidden_states(model: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        inner = _unwrap(model)
        if getattr(inner, "can_return_hidden_states", False):
            return _hidden_of(model(**inputs, return_hidden_states=True))
        return _hidden_of(inner.base_model(**inputs))
