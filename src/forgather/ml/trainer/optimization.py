"""What a trainer builds from `TrainingArguments` when it is given no factories.

The optimizer (AdamW, weight decay on matrices only), the learning-rate
schedule (`args.lr_scheduler_type`), the number of optimizer steps, and how a
saved schedule is restored when the run is resumed with another `max_steps`.

The decision a reader may question: resumed with a larger `max_steps`, the
checkpoint's schedule would run past its end at its final rate (0 for the
linear and cosine defaults). As Hugging Face's Trainer does, the schedule
built for the new `max_steps` is kept and only its position restored
(`continue_schedule`); a warning names both horizons.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..optim import AdamW, continue_schedule, get_scheduler
from .training_args import TrainingArguments

__all__ = [
    "OptimizerFactory",
    "SchedulerFactory",
    "default_optimizer",
    "default_scheduler",
    "restore_lr_scheduler",
    "total_steps",
]

logger = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


def default_optimizer(params: list[nn.Parameter], args: TrainingArguments) -> Optimizer:
    """AdamW configured by `args`, without weight decay on 1-d tensors (biases, norm gains)."""
    # Weight decay on matrices only: decaying biases and norm gains hurts (nanoGPT, GPT-3).
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    # Fused where torch has the kernel (CPU, CUDA): what HF's default "adamw_torch_fused" uses.
    return AdamW(
        groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )  # fmt: skip


def default_scheduler(optimizer: Optimizer, args: TrainingArguments, max_steps: int) -> LRScheduler:
    """The `args.lr_scheduler_type` schedule (with `args.warmup_steps`) over `max_steps`."""
    return get_scheduler(
        args.lr_scheduler_type, optimizer, args.warmup_steps, max_steps,
        **args.lr_scheduler_kwargs,
    )  # fmt: skip


def total_steps(args: TrainingArguments, batches_per_epoch: int | None) -> int:
    """Optimizer steps of the run: `args.max_steps`, or `num_train_epochs` of batches.

    A training dataset without a length counts `args.epoch_train_steps` batches
    per epoch (the original Forgather's book-keeping epoch).
    """
    if args.max_steps > 0:
        return args.max_steps
    if batches_per_epoch is None:
        batches_per_epoch = args.epoch_train_steps
    accumulation = args.gradient_accumulation_steps
    return max(1, math.ceil(args.num_train_epochs * batches_per_epoch / accumulation))


def restore_lr_scheduler(
    scheduler: LRScheduler, state: dict[str, Any], saved_max_steps: int, max_steps: int, step: int
) -> None:
    """Restore a saved schedule; on a new horizon keep `scheduler` and move it to the saved step.

    Args:
        scheduler: The schedule built for this run's `max_steps`.
        state: The checkpoint's `scheduler.state_dict()`.
        saved_max_steps: The `max_steps` of the run that saved it.
        max_steps: This run's.
        step: The step being resumed (for the warning).
    """
    if saved_max_steps == max_steps:
        scheduler.load_state_dict(state)  # the same curve, exactly
        return
    logger.warning(
        "resuming at step %d with max_steps=%d (the checkpoint's run had %d): "
        "the learning-rate schedule continues on a curve built for %d steps",
        step, max_steps, saved_max_steps, max_steps,
    )  # fmt: skip
    if not continue_schedule(scheduler, state):
        logger.warning(
            "%s cannot be moved to a new horizon: it keeps the checkpoint's (%d steps)",
            type(scheduler).__name__, saved_max_steps,
        )  # fmt: skip
        scheduler.load_state_dict(state)
