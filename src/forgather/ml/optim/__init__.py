"""Optimizers and learning-rate schedules for `forgather.ml.trainer`.

AdamW and SGD are torch's, with the fused kernels chosen by default where
torch has them (`fused.py`), so a config names every optimizer from one place;
Adafactor is ours (factored second moments).
"""

from .adafactor import Adafactor
from .fused import SGD, AdamW, fused_supported
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
    "fused_supported",
    "get_scheduler",
    "linear_with_warmup",
    "warmup_stable_decay",
]
