"""`sequential_lr_factory`: torch's `SequentialLR` from schedule factories, built late.

A config cannot build the schedules of a `SequentialLR` before the optimizer
exists; it passes factories (`!partial`s taking the optimizer) and the
trainer's `lr_scheduler_factory` calls this with the optimizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, SequentialLR

__all__ = ["sequential_lr_factory"]


def sequential_lr_factory(
    optimizer: Optimizer,
    schedulers: Sequence[Callable[[Optimizer], LRScheduler]],
    milestones: list[int],
    last_epoch: int = -1,
) -> SequentialLR:
    """`SequentialLR(optimizer, [f(optimizer) for f in schedulers], milestones)`.

    Args:
        optimizer: The optimizer to schedule.
        schedulers: Factories, each called with `optimizer`.
        milestones: Steps at which the next schedule takes over (one fewer than schedulers).
        last_epoch: As torch's schedulers.
    """
    return SequentialLR(
        optimizer,
        schedulers=[factory(optimizer) for factory in schedulers],
        milestones=list(milestones),
        last_epoch=last_epoch,
    )
