"""`InfiniteLRScheduler`: warmup, cosine cooldown to a constant rate, optional exponential anneal.

The "infinite" schedule of Gupta et al., *Beyond Cosine Decay: On the
effectiveness of Infinite Learning Rate Schedule for Continual Pre-training*
(arXiv:2503.02844), with the original Forgather's arguments: its configs build
it as ``!lambda:forgather.ml.optim.infinite_lr_scheduler:InfiniteLRScheduler``
with ``warmup_steps``, ``cooldown_steps`` and ``constant_lr``.

Rate at step ``t`` (``base`` is the optimizer's learning rate):

- ``t < warmup_steps``: ``base * t / warmup_steps``;
- then, for ``cooldown_steps``: half a cosine from ``base`` down to ``constant_lr``;
- then ``constant_lr`` (``base`` when ``cooldown_steps`` is 0) indefinitely,
- or, from ``checkpoint_step`` on (when >= 0), an exponential decay from
  ``constant_lr`` towards ``min_lr`` with time constant ``tau`` steps.

The decision a reader may question: the rate is a closed form of the step
(`_get_closed_form_lr`), not a product of per-step factors, so a resumed run
with a changed horizon can be moved to its step (`continue_schedule`).
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["InfiniteLRScheduler"]


class InfiniteLRScheduler(LRScheduler):
    """Warmup, cosine cooldown, constant rate, optional anneal (see the module docstring).

    Args:
        optimizer: Its learning rate is the peak rate.
        warmup_steps: Linear warmup from 0.
        cooldown_steps: Cosine from the peak down to `constant_lr`.
        constant_lr: The rate after the cooldown (absolute, not a ratio).
        min_lr: Where the anneal tends to.
        tau: The anneal's time constant, in steps.
        checkpoint_step: Step where the anneal starts; < 0: never.
        last_epoch: As torch's schedulers (-1: a new schedule).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int = 0,
        cooldown_steps: int = 0,
        constant_lr: float = 3.75e-5,
        min_lr: float = 1e-8,
        tau: float = 1e4,
        checkpoint_step: int = -1,
        last_epoch: int = -1,
    ) -> None:
        if warmup_steps < 0 or cooldown_steps < 0:
            raise ValueError("warmup_steps and cooldown_steps must be >= 0")
        if 0 <= checkpoint_step < warmup_steps + cooldown_steps:
            raise ValueError("checkpoint_step must come after warmup and cooldown (or be < 0)")
        if tau <= 0 or min_lr < 0 or constant_lr <= 0:
            raise ValueError("need tau > 0, min_lr >= 0 and constant_lr > 0")
        self.warmup_steps = warmup_steps
        self.cooldown_steps = cooldown_steps
        self.constant_lr = constant_lr
        self.min_lr = min_lr
        self.tau = tau
        self.checkpoint_step = checkpoint_step
        super().__init__(optimizer, last_epoch)

    def _rate(self, base: float, step: int) -> float:
        if step < self.warmup_steps:
            return base * step / self.warmup_steps
        if step < self.warmup_steps + self.cooldown_steps:
            progress = (step - self.warmup_steps) / self.cooldown_steps
            return self.constant_lr + (base - self.constant_lr) * 0.5 * (
                1.0 + math.cos(math.pi * progress)
            )
        if 0 <= self.checkpoint_step <= step:
            decay = math.exp(-(step - self.checkpoint_step) / self.tau)
            return self.min_lr + (self.constant_lr - self.min_lr) * decay
        return self.constant_lr if self.cooldown_steps > 0 else base

    def _get_closed_form_lr(self) -> list[float]:
        return [self._rate(base, self.last_epoch) for base in self.base_lrs]

    def get_lr(self) -> list[float]:
        """The rates of the current step (`last_epoch`)."""
        return self._get_closed_form_lr()
