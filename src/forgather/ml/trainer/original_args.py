"""The original Forgather's `TrainingArguments` fields: normalised, or refused with a reason.

Configs written for the original Forgather pass its field names to our
`TrainingArguments`. Most are honoured by the trainer (`default_dtype`,
`sdpa_backend`, `gradient_checkpointing`, `device`, ...); this module handles
the rest before the dataclass's own checks run:

- spellings of the same setting: `IntervalStrategy` members for the
  `*_strategy` fields, `seed=-1` (the original: "do not seed"; here a fresh
  seed is drawn and recorded, so the run can still be repeated),
  `lr_scheduler_kwargs=None`;
- settings this trainer cannot honour raise `ValueError` naming the field and
  what to do instead (for example `save_optimizer_state=False`);
- settings without an effect here (`gc_threshold`, `speed_metrics_start_step`,
  `overwrite_output_dir`, `save_safetensors=False`) are accepted; and
  `fuse_optim_with_backward=True` logs a warning: the updates are the same,
  only the memory saving is missing.

The decision a reader may question: a refused value is an error, not a
warning. A run that silently keeps its optimizer state when the config asked
for a fresh one, or keeps only some checkpoints' contents, trains something
else than its author meant, and is found out hours later.
"""

from __future__ import annotations

import enum
import logging
import random
from typing import Any

__all__ = ["IntervalStrategy", "check_original_fields"]

logger = logging.getLogger(__name__)


class IntervalStrategy(str, enum.Enum):
    """When to log, evaluate or save: the original's (and HF's) enum of the strategy strings."""

    NO = "no"
    STEPS = "steps"
    EPOCH = "epoch"


# field -> (the value we honour, what to do instead)
_ONLY = {
    "save_on_each_node": (False, "checkpoints are written once, by the main process of the job"),
    "save_optimizer_state": (True, "every checkpoint holds the optimizer state"),
    "save_scheduler_state": (True, "every checkpoint holds the schedule's state"),
    "save_dataset_state": (True, "every checkpoint holds the data position"),
    "save_rng_state": (True, "every checkpoint holds the random generators' states"),
}

_CONSTRUCT_ON = ("default", "device")


def check_original_fields(args: Any) -> None:
    """Normalise the original's spellings on `args` in place; refuse what cannot be honoured.

    Raises:
        ValueError: a field set to a value this trainer cannot honour.
    """
    for name in ("logging_strategy", "eval_strategy", "save_strategy"):
        value = getattr(args, name)
        if isinstance(value, IntervalStrategy):
            setattr(args, name, value.value)
    if args.seed == -1:
        args.seed = random.SystemRandom().randrange(2**31)
        logger.info("seed=-1: training with seed %d (recorded in the run's arguments)", args.seed)
    if args.lr_scheduler_kwargs is None:
        args.lr_scheduler_kwargs = {}
    for name, (honoured, instead) in _ONLY.items():
        if getattr(args, name) != honoured:
            raise ValueError(
                f"TrainingArguments: {name}={getattr(args, name)!r} is not supported "
                f"(only {honoured!r}): {instead}"
            )
    if args.construct_model_on not in _CONSTRUCT_ON:
        raise ValueError(
            f"TrainingArguments: construct_model_on={args.construct_model_on!r} is not supported; "
            f"use one of {_CONSTRUCT_ON} (the model is built, then moved to its device)"
        )
    if args.fuse_optim_with_backward:
        logger.warning(
            "fuse_optim_with_backward=True: the optimizer steps after the backward pass as usual "
            "(the same updates, without the memory saving)"
        )
    if args.eval_delay < 0:
        raise ValueError(f"TrainingArguments: eval_delay must be >= 0, got {args.eval_delay}")
    if args.epoch_train_steps < 1:
        raise ValueError(
            f"TrainingArguments: epoch_train_steps must be >= 1, got {args.epoch_train_steps}"
        )
