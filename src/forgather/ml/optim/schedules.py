"""Learning-rate schedules: warmup followed by cosine, linear, constant or WSD.

Every schedule is a `torch.optim.lr_scheduler.LambdaLR` driven by a small
callable *object* (not a closure): `LambdaLR.state_dict()` saves the object's
attributes, so a checkpoint records the shape of the schedule as well as its
position, and a resumed run continues on exactly the same curve.

Step convention: the multiplier for optimizer step `s` (0-based, the number of
steps already taken) is `(s + 1) / warmup_steps` during warmup, so the first step
already trains (a zero learning rate would waste it) and step `warmup_steps - 1`
uses the full rate. After warmup, `progress = (s - warmup) / (total - warmup)`
runs from 0 towards 1; from `total_steps` on the multiplier stays at
`min_lr_ratio`.

Resuming with another number of steps: the saved shape is the old run's, so
the trainer instead builds the schedule for the new total and moves it to the
saved step with `continue_schedule` (what Hugging Face's Trainer does).
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

__all__ = [
    "ScheduleMultiplier",
    "constant_with_warmup",
    "continue_schedule",
    "cosine_with_warmup",
    "get_scheduler",
    "linear_with_warmup",
    "warmup_stable_decay",
]


class ScheduleMultiplier:
    """The learning-rate multiplier of one schedule, as a picklable callable.

    Args:
        kind: "constant", "linear", "cosine" or "wsd".
        warmup_steps: Steps of linear warmup from ~0 to the full rate.
        total_steps: Step at which the schedule reaches `min_lr_ratio`
            (ignored by "constant").
        min_lr_ratio: Final multiplier, as a fraction of the peak rate.
        decay_steps: For "wsd" only: length of the final cooldown; the rate is
            constant from the end of warmup until `total_steps - decay_steps`.
        decay_shape: For "wsd" only: "linear", "cosine" or "sqrt" (1 - sqrt(x),
            the cooldown shape of Hägele et al. 2024).
    """

    def __init__(
        self,
        kind: str,
        warmup_steps: int = 0,
        total_steps: int = 0,
        min_lr_ratio: float = 0.0,
        decay_steps: int = 0,
        decay_shape: str = "linear",
    ) -> None:
        if kind not in ("constant", "linear", "cosine", "wsd"):
            raise ValueError(f"unknown schedule {kind!r}: use constant, linear, cosine or wsd")
        if decay_shape not in ("linear", "cosine", "sqrt"):
            raise ValueError(f"unknown decay shape {decay_shape!r}: use linear, cosine or sqrt")
        if kind != "constant" and total_steps < warmup_steps:
            # A short debugging run with the experiment's warmup still runs: the rate
            # ramps up until total_steps, then drops to min_lr_ratio.
            total_steps = warmup_steps
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.min_lr_ratio = float(min_lr_ratio)
        self.decay_steps = int(decay_steps)
        self.decay_shape = decay_shape

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return 1.0
        if step >= self.total_steps:
            return self.min_lr_ratio
        if self.kind == "wsd":
            decay_start = self.total_steps - self.decay_steps
            if step < decay_start:
                return 1.0
            progress = (step - decay_start) / self.decay_steps
            shape = self.decay_shape
        else:
            progress = (step - self.warmup_steps) / (self.total_steps - self.warmup_steps)
            shape = self.kind
        if shape == "cosine":
            remaining = 0.5 * (1.0 + math.cos(math.pi * progress))
        elif shape == "sqrt":
            remaining = 1.0 - math.sqrt(progress)
        else:
            remaining = 1.0 - progress
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * remaining


def constant_with_warmup(optimizer: Optimizer, warmup_steps: int = 0) -> LambdaLR:
    """Linear warmup, then the optimizer's learning rate forever."""
    return LambdaLR(optimizer, ScheduleMultiplier("constant", warmup_steps))


def linear_with_warmup(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> LambdaLR:
    """Linear warmup, then linear decay to `min_lr_ratio` at `total_steps`."""
    return LambdaLR(
        optimizer, ScheduleMultiplier("linear", warmup_steps, total_steps, min_lr_ratio)
    )


def cosine_with_warmup(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> LambdaLR:
    """Linear warmup, then half a cosine down to `min_lr_ratio` at `total_steps`.

    >>> import torch
    >>> opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    >>> sched = cosine_with_warmup(opt, warmup_steps=2, total_steps=6)
    >>> [round(sched.lr_lambdas[0](s), 3) for s in range(7)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146, 0.0]
    """
    return LambdaLR(
        optimizer, ScheduleMultiplier("cosine", warmup_steps, total_steps, min_lr_ratio)
    )


def warmup_stable_decay(
    optimizer: Optimizer,
    warmup_steps: int,
    total_steps: int,
    decay_steps: int | None = None,
    decay_ratio: float = 0.2,
    min_lr_ratio: float = 0.0,
    decay_shape: str = "linear",
) -> LambdaLR:
    """Warmup–stable–decay (WSD): warmup, a constant plateau, then a cooldown.

    Args:
        optimizer: The optimizer whose learning rate is scheduled.
        warmup_steps: Steps of linear warmup.
        total_steps: Last step of the cooldown.
        decay_steps: Length of the cooldown in steps; when None it is
            `decay_ratio * total_steps`.
        decay_ratio: Fraction of `total_steps` spent cooling down when
            `decay_steps` is None.
        min_lr_ratio: Multiplier reached at the end of the cooldown.
        decay_shape: "linear", "cosine" or "sqrt".

    Returns:
        The scheduler.
    """
    if decay_steps is None:
        decay_steps = round(decay_ratio * total_steps)
    if not 0 < decay_steps <= total_steps - warmup_steps:
        raise ValueError(
            f"decay_steps ({decay_steps}) must be in 1..total_steps - warmup_steps "
            f"({total_steps - warmup_steps})"
        )
    multiplier = ScheduleMultiplier(
        "wsd", warmup_steps, total_steps, min_lr_ratio, decay_steps, decay_shape
    )
    return LambdaLR(optimizer, multiplier)


def get_scheduler(
    name: str, optimizer: Optimizer, warmup_steps: int, total_steps: int, **kwargs: float
) -> LambdaLR:
    """Build a schedule by name, as `TrainingArguments.lr_scheduler_type` names it.

    Args:
        name: "constant" (also "constant_with_warmup"), "linear", "cosine" or
            "wsd" (also "warmup_stable_decay").
        optimizer: The optimizer whose learning rate is scheduled.
        warmup_steps: Steps of linear warmup.
        total_steps: Total optimizer steps of the run.
        **kwargs: Extra arguments of the schedule (`min_lr_ratio`, `decay_steps`,
            `decay_ratio`, `decay_shape`).

    Returns:
        The scheduler.

    Raises:
        ValueError: For an unknown name.
    """
    if name in ("constant", "constant_with_warmup"):
        return constant_with_warmup(optimizer, warmup_steps, **kwargs)
    if name == "linear":
        return linear_with_warmup(optimizer, warmup_steps, total_steps, **kwargs)
    if name == "cosine":
        return cosine_with_warmup(optimizer, warmup_steps, total_steps, **kwargs)
    if name in ("wsd", "warmup_stable_decay"):
        return warmup_stable_decay(optimizer, warmup_steps, total_steps, **kwargs)
    raise ValueError(f"unknown lr_scheduler_type {name!r}: use constant, linear, cosine or wsd")


def continue_schedule(scheduler: LRScheduler, state: dict[str, Any]) -> bool:
    """Move a newly built schedule to the step a saved one had reached, keeping its own shape.

    Only the position (`last_epoch`) comes from `state`; the curve, the base
    rates and the horizon stay those `scheduler` was built with, and the
    optimizer's rates are set to the new curve's values at that step.

    Args:
        scheduler: A freshly built scheduler, e.g. for a longer run.
        state: `state_dict()` of the scheduler of the run being resumed.

    Returns:
        False, changing nothing, for a scheduler whose rate at a step cannot be
        computed from the step alone (e.g. one that multiplies the previous rate).
    """
    step = int(state["last_epoch"])
    if isinstance(scheduler, LambdaLR):
        pairs = zip(scheduler.lr_lambdas, scheduler.base_lrs, strict=True)
        rates = [base * fn(step) for fn, base in pairs]
    elif hasattr(scheduler, "_get_closed_form_lr"):  # torch's StepLR, CosineAnnealingLR, ...
        previous, scheduler.last_epoch = scheduler.last_epoch, step
        try:
            rates = list(scheduler._get_closed_form_lr())
        finally:
            scheduler.last_epoch = previous
    else:
        return False
    scheduler.last_epoch = step
    # torch checks the call order of optimizer.step() and scheduler.step() at count 1.
    scheduler._step_count = int(state.get("_step_count", step + 1))
    for group, rate in zip(scheduler.optimizer.param_groups, rates, strict=True):
        group["lr"] = rate
    scheduler._last_lr = list(rates)
    return True
