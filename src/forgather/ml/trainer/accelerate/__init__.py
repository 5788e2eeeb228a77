"""The original Forgather's Accelerate trainer names, on our `AccelTrainer`.

Its configs build an `accelerate.Accelerator` and pass it in::

    trainer: !singleton:forgather.ml.trainer.accelerate:AccelTrainer
        args: !singleton:forgather.ml.trainer.accelerate:AccelTrainingArguments { ... }
        accelerator: *accelerator
        ...

Our `AccelTrainer` (DDP, or FSDP with `strategy="fsdp"`) uses the given
accelerator; training on CPUs under torchrun needs it built with `cpu=True`
(a mismatch between the launched and joined processes is reported at setup).
`AccelDistEnv` (named in the original's template comments only) is the
`DistributedEnvironment`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forgather.ml.distributed import DistributedEnvironment as AccelDistEnv

from ..parallel.accel_trainer import AccelTrainer as _AccelTrainer
from ..training_args import TrainingArguments

__all__ = ["AccelDistEnv", "AccelTrainer", "AccelTrainingArguments"]


@dataclass(kw_only=True)
class AccelTrainingArguments(TrainingArguments):
    """`TrainingArguments` (the original added no fields)."""


class AccelTrainer(_AccelTrainer):
    """Our `AccelTrainer` with the original's arguments.

    Args:
        args: `AccelTrainingArguments` (or any `TrainingArguments`).
        accelerator: The `accelerate.Accelerator` to use; None: one built from `args`.
        **kwargs: The trainer's other arguments, and our options (`strategy`, ...).
    """

    def __init__(self, *, args: TrainingArguments, accelerator: Any = None, **kwargs: Any) -> None:
        super().__init__(args=args, **kwargs)
        self.accelerator = accelerator
