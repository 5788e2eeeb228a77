"""`LogWindow`: what the training loop sums between two log entries.

The decision a reader may question: the window keeps the step losses and
gradient norms as device tensors and adds them up there; turning them into
Python floats would synchronise the device at every step. They are read once,
when the entry is logged (and summed over the ranks then, by the trainer).
Time spent evaluating and saving is counted apart (`paused`), so tokens/s
measures training only.
"""

from __future__ import annotations

import time

import torch

__all__ = ["LogWindow"]


class LogWindow:
    """Sums over the steps since the last training log entry (tensors: no device sync).

    Args:
        tokens_at_start: `state.num_input_tokens_seen` when the window opens.
    """

    def __init__(self, tokens_at_start: int) -> None:
        self.tokens_at_start = tokens_at_start
        self.start = time.perf_counter()
        self.paused = 0.0  # seconds spent evaluating and saving, excluded from throughput
        self.steps = 0
        self.loss: torch.Tensor | float = 0.0  # () summed step losses of this rank
        self.grad_norm: torch.Tensor | None = None  # () summed norms before clipping
        self.lr: float | torch.Tensor = 0.0  # the last step's; a tensor for tensor-lr optimizers

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor | None, lr) -> None:
        """Count one optimizer step."""
        self.steps += 1
        self.loss = self.loss + loss
        if grad_norm is not None:
            self.grad_norm = grad_norm if self.grad_norm is None else self.grad_norm + grad_norm
        self.lr = lr

    def elapsed(self) -> float:
        """Seconds of training in the window (evaluation and saving excluded)."""
        return time.perf_counter() - self.start - self.paused

    def entry(
        self, loss_total: float, grad_norm_mean: float | None, tokens_seen: int
    ) -> dict[str, float]:
        """The log entry of the window.

        Args:
            loss_total: The window's summed step losses over all ranks.
            grad_norm_mean: The summed gradient norms averaged over the ranks, or None.
            tokens_seen: `state.num_input_tokens_seen` now (all ranks).
        """
        logs = {"loss": loss_total / self.steps, "learning_rate": float(self.lr)}
        if grad_norm_mean is not None:
            logs["grad_norm"] = grad_norm_mean / self.steps
        logs["tokens_per_second"] = (tokens_seen - self.tokens_at_start) / max(self.elapsed(), 1e-9)
        logs["num_input_tokens_seen"] = tokens_seen
        return logs
