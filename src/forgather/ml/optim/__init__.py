"""Optimizers and learning-rate schedules for `forgather.ml.trainer`.

AdamW and SGD are torch's own, re-exported so a config names every optimizer
from one place; Adafactor is ours (factored second moments).
"""

from torch.optim import SGD, AdamW

from .adafactor import Adafactor
from .schedules import (
    ScheduleMultiplier,
    constant_with_warmup,
    continue_schedule,
    cosine_with_warmup,
    get_scheduler,
    linear_with_warmup,
    warmup_stable_decay,
)

__all__ = [
    "SGD",
    "Adafactor",
    "AdamW",
    "ScheduleMultiplier",
    "constant_with_warmup",
    "continue_schedule",
    "cosine_with_warmup",
    "get_scheduler",
    "linear_with_warmup",
    "warmup_stable_decay",
]
