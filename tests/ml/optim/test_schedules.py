"""Schedule values at the steps that define each shape, and their checkpointing."""

import doctest

import pytest
import torch

from forgather.ml.optim import (
    constant_with_warmup,
    continue_schedule,
    cosine_with_warmup,
    get_scheduler,
    linear_with_warmup,
    warmup_stable_decay,
)
from forgather.ml.optim import schedules as schedules_module


def lrs(scheduler, steps):
    """The learning rate used by each of the first `steps` optimizer steps."""
    out = []
    for _ in range(steps):
        out.append(scheduler.get_last_lr()[0])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def sgd(lr=1.0):
    return torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=lr)


def test_warmup_is_linear_and_reaches_peak():
    values = lrs(constant_with_warmup(sgd(0.4), warmup_steps=4), 6)
    assert values == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.4, 0.4])


def test_cosine_key_steps():
    values = lrs(cosine_with_warmup(sgd(), warmup_steps=2, total_steps=10, min_lr_ratio=0.1), 12)
    assert values[1] == pytest.approx(1.0)  # end of warmup
    assert values[6] == pytest.approx(0.55)  # halfway through the decay: (1 + 0.1) / 2
    assert values[10] == pytest.approx(0.1)  # floor reached at total_steps ...
    assert values[11] == pytest.approx(0.1)  # ... and kept afterwards
    decay = values[2:11]
    assert all(a > b for a, b in zip(decay, decay[1:], strict=False))


def test_linear_key_steps():
    values = lrs(linear_with_warmup(sgd(), warmup_steps=0, total_steps=4), 5)
    assert values == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_wsd_plateau_then_cooldown():
    sched = warmup_stable_decay(sgd(), warmup_steps=2, total_steps=10, decay_steps=4)
    values = lrs(sched, 11)
    assert values[:2] == pytest.approx([0.5, 1.0])
    assert values[2:6] == pytest.approx([1.0] * 4)  # stable until total - decay
    assert values[6:] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_wsd_sqrt_cooldown_and_ratio_default():
    sched = warmup_stable_decay(sgd(), 0, 10, decay_shape="sqrt")  # decay_ratio 0.2 -> 2 steps
    values = lrs(sched, 10)
    assert values[:8] == pytest.approx([1.0] * 8)
    assert values[8:] == pytest.approx([1.0, 1.0 - 0.5**0.5])


def test_get_scheduler_by_name_and_errors():
    assert lrs(get_scheduler("cosine", sgd(), 0, 2), 2) == pytest.approx([1.0, 0.5])
    with pytest.raises(ValueError, match="unknown lr_scheduler_type"):
        get_scheduler("exponential", sgd(), 0, 10)
    # A run shorter than its warmup still runs: warmup, then the floor.
    short = cosine_with_warmup(sgd(), warmup_steps=4, total_steps=2, min_lr_ratio=0.5)
    assert lrs(short, 6) == pytest.approx([0.25, 0.5, 0.75, 1.0, 0.5, 0.5])


def test_state_dict_restores_shape_and_position():
    first = cosine_with_warmup(sgd(), warmup_steps=3, total_steps=20)
    lrs(first, 7)
    state = first.state_dict()
    # A scheduler built with other numbers takes the checkpoint's shape and position.
    second = cosine_with_warmup(sgd(), warmup_steps=1, total_steps=5)
    second.load_state_dict(state)
    assert lrs(second, 5) == pytest.approx(lrs(first, 5))


def test_docstring_examples():
    assert doctest.testmod(schedules_module).failed == 0


def stepped(scheduler, steps):
    for _ in range(steps):
        scheduler.optimizer.step()
        scheduler.step()
    return scheduler


@pytest.mark.parametrize(
    "build",
    [
        lambda opt, total: cosine_with_warmup(opt, 2, total, min_lr_ratio=0.1),
        lambda opt, total: get_scheduler("linear", opt, 2, total),
        lambda opt, total: warmup_stable_decay(opt, 2, total, decay_ratio=0.5),
        lambda opt, total: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total),
    ],
)
def test_continue_schedule_moves_a_longer_schedule_to_the_saved_step(build):
    saved = stepped(build(sgd(0.4), 6), 4).state_dict()  # a 6-step run, 4 steps done
    longer = build(sgd(0.4), 12)
    assert continue_schedule(longer, saved)
    reference = stepped(build(sgd(0.4), 12), 4)  # a 12-step run from the start
    assert longer.last_epoch == 4
    assert longer.get_last_lr() == pytest.approx(reference.get_last_lr())
    assert longer.optimizer.param_groups[0]["lr"] == pytest.approx(reference.get_last_lr()[0])
    assert lrs(longer, 8) == pytest.approx(lrs(reference, 8))  # the rest of the curve too


def test_continue_schedule_refuses_a_schedule_without_closed_form():
    multiplicative = torch.optim.lr_scheduler.MultiplicativeLR(sgd(), lambda step: 0.9)
    saved = stepped(multiplicative, 2).state_dict()
    fresh = torch.optim.lr_scheduler.MultiplicativeLR(sgd(), lambda step: 0.9)
    assert not continue_schedule(fresh, saved)
    assert fresh.last_epoch == 0  # untouched
