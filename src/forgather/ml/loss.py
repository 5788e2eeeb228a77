"""Loss functions of the original Forgather's configs: `loss(logits or hidden, labels)`.

- `CausalLoss`: next-token cross-entropy from logits, the mean over the
  targets that are not -100 (labels aligned with the inputs, shifted here).
- `ChunkedCausalLoss`: the same value, computed over slices of the
  vocabulary so no full-size float copy of the logits is made.
- `LinearCrossEntropyLoss`: the head and the loss fused: from the final
  hidden states and the output embeddings, in chunks of tokens, never
  materialising the (tokens, vocabulary) logits for backward either.
- `RescaleLoss`: a loss times a constant (gradient accumulation).

Trainers take the first two as `compute_loss_func` and the third through
`fused_loss_factory` (see `forgather.ml.trainer.model_loss`).

The decision a reader may question: `LinearCrossEntropyLoss` computes the
gradients of the hidden states and of the weight during its forward pass,
chunk by chunk, and keeps only those (the size of the inputs) for backward,
instead of keeping each chunk's logits or recomputing them. That is the
memory saving, at the cost of the backward work being done even when the
loss is only evaluated (`torch.no_grad()` skips it). The original's optional
kernels (`impl="cce"`, `"liger"`) are not dependencies: every `impl` runs
this implementation.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CausalLoss", "ChunkedCausalLoss", "LinearCrossEntropyLoss", "RescaleLoss"]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
_IMPLS = ("auto", "cce", "liger", "pytorch")


def _shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, V) predictions at t and (N,) targets t+1, flattened over batch and time."""
    return logits[..., :-1, :].reshape(-1, logits.shape[-1]), labels[..., 1:].reshape(-1)


def causal_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """() Mean next-token cross-entropy over targets that are not -100.

    Args:
        logits: (B, T, V).
        labels: (B, T), aligned with the inputs (``labels[t]`` is predicted at t-1).
    """
    flat_logits, flat_labels = _shift(logits, labels)
    return F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE_INDEX)


class CausalLoss:
    """Next-token cross-entropy from logits (`causal_loss`); `compile=True` compiles it."""

    def __init__(self, compile: bool = False) -> None:
        self.compile = compile
        self.loss_fn: Callable[..., torch.Tensor] = (
            torch.compile(causal_loss) if compile else causal_loss
        )

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(logits, labels)

    def __repr__(self) -> str:
        return f"CausalLoss(compile={self.compile})"


def chunked_causal_loss(
    logits: torch.Tensor, labels: torch.Tensor, chunk_size: int = 4096
) -> torch.Tensor:
    """`causal_loss`, with the log-sum-exp taken over `chunk_size` vocabulary columns at a time."""
    flat_logits, flat_labels = _shift(logits, labels)
    valid = flat_labels != IGNORE_INDEX
    if not bool(valid.any()):
        return flat_logits.sum() * 0.0  # () zero, still attached to the graph
    # Running log-sum-exp over the vocabulary slices: (N,)
    lse = torch.stack(
        [
            torch.logsumexp(flat_logits[:, i : i + chunk_size].float(), dim=-1)
            for i in range(0, flat_logits.shape[-1], chunk_size)
        ]
    ).logsumexp(dim=0)
    targets = flat_labels.clamp(min=0)
    target_logit = flat_logits.gather(1, targets[:, None]).squeeze(1).float()
    return (lse - target_logit)[valid].mean()


class ChunkedCausalLoss:
    """`CausalLoss` computed over vocabulary chunks (for very large vocabularies)."""

    def __init__(self, chunk_size: int = 4096, compile: bool = False) -> None:
        self.chunk_size = chunk_size
        self.compile = compile
        fn = functools.partial(chunked_causal_loss, chunk_size=chunk_size)
        self.loss_fn: Callable[..., torch.Tensor] = torch.compile(fn) if compile else fn

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss_fn(logits, labels)

    def __repr__(self) -> str:
        return f"ChunkedCausalLoss(chunk_size={self.chunk_size}, compile={self.compile})"


class _FusedLinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of `hidden @ weight.T + bias` over valid targets, by token chunks.

    Forward computes the loss and, chunk by chunk, its gradients with respect
    to hidden, weight and bias; backward scales those by the incoming gradient.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, chunk_size, with_grads):  # noqa: D102
        # hidden: (N, H); weight: (V, H); bias: (V,) or None; targets: (N,) with -100 ignored
        valid = targets != IGNORE_INDEX
        count = int(valid.sum())
        needs = [with_grads and n for n in ctx.needs_input_grad]
        ctx.weight_dtype, ctx.bias_dtype = weight.dtype, bias.dtype if bias is not None else None
        grad_hidden = torch.zeros_like(hidden) if needs[0] else None
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if needs[1] else None
        grad_bias = (
            torch.zeros_like(bias, dtype=torch.float32) if bias is not None and needs[2] else None
        )
        total = torch.zeros((), device=hidden.device, dtype=torch.float32)
        rows = valid.nonzero().squeeze(1)  # only tokens with a target cost anything
        for start in range(0, rows.numel(), chunk_size):
            index = rows[start : start + chunk_size]
            h = hidden[index]  # (n, H)
            logits = F.linear(h, weight, bias).float()  # (n, V)
            target = targets[index]
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, target[:, None]).squeeze(1)).sum()
            if grad_hidden is None and grad_weight is None and grad_bias is None:
                continue
            # d(mean CE)/d logits = (softmax - onehot) / count
            grad_logits = torch.exp(logits - lse[:, None])
            grad_logits[torch.arange(len(index), device=h.device), target] -= 1.0
            grad_logits /= count
            if grad_hidden is not None:
                grad_hidden[index] = (grad_logits.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight += grad_logits.T @ h.float()
            if grad_bias is not None:
                grad_bias += grad_logits.sum(dim=0)
        ctx.save_for_backward(grad_hidden, grad_weight, grad_bias)
        ctx.has = (grad_hidden is not None, grad_weight is not None, grad_bias is not None)
        loss = total / max(count, 1)
        return loss.to(hidden.dtype) if hidden.dtype.is_floating_point else loss

    @staticmethod
    def backward(ctx, grad_output):  # noqa: D102
        grad_hidden, grad_weight, grad_bias = ctx.saved_tensors
        scale = grad_output.float()
        out_hidden = grad_hidden * scale.to(grad_hidden.dtype) if ctx.has[0] else None
        out_weight = (grad_weight * scale).to(ctx.weight_dtype) if ctx.has[1] else None
        out_bias = (grad_bias * scale).to(ctx.bias_dtype) if ctx.has[2] else None
        return out_hidden, out_weight, out_bias, None, None, None


def fused_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    bias: torch.Tensor | None = None,
    chunk_size: int = 4096,
) -> torch.Tensor:
    """() Mean next-token cross-entropy of `hidden @ weight.T (+ bias)`, without the full logits.

    Args:
        hidden: (B, T, H) final hidden states.
        weight: (V, H) output embeddings.
        labels: (B, T) aligned with the inputs; -100 is ignored.
        bias: (V,) or None.
        chunk_size: Tokens per chunk: peak extra memory is about chunk_size * V floats.
    """
    flat_hidden = hidden[..., :-1, :].reshape(-1, hidden.shape[-1])
    targets = labels[..., 1:].reshape(-1)
    if weight.dtype != flat_hidden.dtype:  # mixed precision: compute in the activations' dtype
        weight = weight.to(flat_hidden.dtype)
        bias = bias.to(flat_hidden.dtype) if bias is not None else None
    # Without autograd (evaluation) the chunks' gradients are not computed.
    with_grads = torch.is_grad_enabled()
    return _FusedLinearCrossEntropy.apply(
        flat_hidden, weight, bias, targets, chunk_size, with_grads
    )


class LinearCrossEntropyLoss:
    """Fused output projection and causal cross-entropy, from the final hidden states.

    Args:
        output_embeddings: The model's head (`model.get_output_embeddings()`):
            a module with `weight` (V, H) and optionally `bias`.
        impl: "auto", "cce", "liger" or "pytorch" in the original; all run the
            plain-torch chunked implementation here (see the module docstring).
        chunk_size: Tokens per chunk.
        ignore_index: Must be -100 (the collators' and trainers' convention).
        compile: Accepted; the chunk loop is not compiled.
        **kwargs: Options of the original's external kernels; refused.
    """

    def __init__(
        self,
        output_embeddings: nn.Module,
        impl: str = "auto",
        chunk_size: int = 4096,
        ignore_index: int = IGNORE_INDEX,
        compile: bool = False,
        **kwargs: Any,
    ) -> None:
        if impl not in _IMPLS:
            raise ValueError(f"LinearCrossEntropyLoss: impl must be one of {_IMPLS}, got {impl!r}")
        if ignore_index != IGNORE_INDEX:
            raise ValueError(
                f"LinearCrossEntropyLoss: ignore_index={ignore_index} is not supported; the "
                f"collators and trainers mark ignored targets with {IGNORE_INDEX}"
            )
        if kwargs:
            raise TypeError(
                f"LinearCrossEntropyLoss: {sorted(kwargs)} are options of the original's "
                "cut-cross-entropy/liger kernels, which this implementation does not use; remove them"
            )
        if impl in ("cce", "liger"):
            logger.info("LinearCrossEntropyLoss: impl=%r runs the plain-torch chunked loss", impl)
        self.output_embeddings = output_embeddings
        self.requested_impl = impl
        self.actual_impl = "pytorch"
        self.chunk_size = chunk_size
        self.ignore_index = ignore_index
        self.compile = compile

    @property
    def weight(self) -> torch.Tensor:
        """(V, H) the head's current weight (read at each call: it may have moved device)."""
        return self.output_embeddings.weight

    @property
    def bias(self) -> torch.Tensor | None:
        """(V,) the head's bias, or None."""
        return getattr(self.output_embeddings, "bias", None)

    def __call__(self, hidden_states: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return fused_linear_cross_entropy(
            hidden_states, self.weight, labels, self.bias, self.chunk_size
        )

    def forward_logits(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, T, V) the logits, for generation."""
        return F.linear(hidden_states, self.weight, self.bias)

    def __repr__(self) -> str:
        vocab, hidden = self.weight.shape
        return (
            f"LinearCrossEntropyLoss(impl={self.actual_impl!r}, vocab_size={vocab}, "
            f"hidden_dim={hidden}, chunk_size={self.chunk_size})"
        )


class RescaleLoss:
    """`loss_fn(...) * scale_factor`; `with no_rescale():` turns the scaling off."""

    def __init__(self, unwrapped_loss_fn: Callable[..., torch.Tensor], scale_factor: float) -> None:
        self.unwrapped_loss_fn = unwrapped_loss_fn
        self.scale_factor = scale_factor
        self.skip_rescale = False

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        loss = self.unwrapped_loss_fn(*args, **kwargs)
        return loss if self.skip_rescale else loss * self.scale_factor

    @contextlib.contextmanager
    def no_rescale(self) -> Iterator[None]:
        """Return the unscaled loss inside the block."""
        previous, self.skip_rescale = self.skip_rescale, True
        try:
            yield
        finally:
            self.skip_rescale = previous
