"""Pipeline schedules by name, and which stages each pipeline rank holds under them.

Names are torch's (`torch.distributed.pipelining.schedules.get_schedule_class`):

| schedule | stages per rank | stage placement (pp = pipeline ranks) |
|---|---|---|
| `GPipe`, `1F1B` | 1 | rank r: stage r |
| `Interleaved1F1B`, `LoopedBFS`, `InterleavedZeroBubble` | v (default 2) | rank r: r, r+pp, r+2pp, ... |
| `ZBVZeroBubble`, `DualPipeV` | 2 | rank r: r and 2pp-1-r (a "V") |

The decision a reader may question: the placement is computed here rather
than read back from the schedule object, because the stages must exist
before the schedule can be built; the table above is the placement torch's
schedules assume (`generate_stage_to_rank_mapping`, styles "loop" and "v").

`forward_only` works around torch 2.13's `eval()` of the V-shaped schedules,
which still walks their backward actions and fails on the hand-over between
a rank's two adjacent stages ("can't steal_bwd_input if this stage doesn't
have backward"): for the evaluation it runs the schedule's own plan with
every backward action removed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from torch.distributed.pipelining.schedules import (
    PipelineScheduleSingle,
    _ComputationType,
    get_schedule_class,
)

__all__ = ["SCHEDULES", "ScheduleChoice", "choose_schedule", "forward_only"]

SCHEDULES = (
    "GPipe",
    "1F1B",
    "Interleaved1F1B",
    "LoopedBFS",
    "InterleavedZeroBubble",
    "ZBVZeroBubble",
    "DualPipeV",
)
_V_SHAPED = ("ZBVZeroBubble", "DualPipeV")


@dataclass(frozen=True)
class ScheduleChoice:
    """A schedule class and the stages it runs on each pipeline rank."""

    schedule_class: type
    single_stage: bool  # the class takes one stage (else a list of stages)
    num_stages: int  # in the whole pipeline
    rank_stages: tuple[tuple[int, ...], ...]  # rank_stages[r]: stage indices on pipeline rank r
    v_shaped: bool  # two stages per rank placed as a "V"


def choose_schedule(
    name: str, pipeline_size: int, stages_per_rank: int | None = None
) -> ScheduleChoice:
    """Resolve a schedule name for `pipeline_size` pipeline ranks.

    Args:
        name: One of `SCHEDULES` (case-insensitive, as torch accepts).
        pipeline_size: Ranks in one pipeline.
        stages_per_rank: For the looped schedules (default 2); must be 1 for
            GPipe/1F1B and 2 for the V-shaped ones when given.

    Raises:
        ValueError: For an unknown name or an impossible `stages_per_rank`.
    """
    schedule_class = get_schedule_class(name)
    canonical = schedule_class.__name__.removeprefix("Schedule")
    if canonical not in SCHEDULES:
        raise ValueError(f"schedule {name!r} is not one of {SCHEDULES}")
    single = issubclass(schedule_class, PipelineScheduleSingle)
    natural = 1 if single else 2
    per_rank = stages_per_rank or natural
    if (single or canonical in _V_SHAPED) and per_rank != natural:
        raise ValueError(f"{canonical} runs {natural} stage(s) per rank, not {per_rank}")
    if per_rank < 1:
        raise ValueError(f"stages_per_rank must be >= 1, got {per_rank}")
    num_stages = pipeline_size * per_rank
    if canonical in _V_SHAPED:
        ranks = tuple((r, num_stages - 1 - r) for r in range(pipeline_size))
    else:
        ranks = tuple(tuple(range(r, num_stages, pipeline_size)) for r in range(pipeline_size))
    return ScheduleChoice(schedule_class, single, num_stages, ranks, canonical in _V_SHAPED)


# Actions a forward-only pass keeps: the computation, its communication, FSDP (un)sharding.
_FORWARD_ACTIONS = {
    _ComputationType.FORWARD,
    _ComputationType.SEND_F,
    _ComputationType.RECV_F,
    _ComputationType.UNSHARD,
    _ComputationType.RESHARD,
}


def _forward_part(action) -> list:
    """The forward actions within `action` (an overlapped F+B action holds one)."""
    if action.sub_actions is not None:
        return [a for sub in action.sub_actions for a in _forward_part(sub)]
    return [action] if action.computation_type in _FORWARD_ACTIONS else []


@contextlib.contextmanager
def forward_only(schedule) -> Iterator[None]:
    """Within the block, a runtime schedule runs only the forward actions of its plan.

    Dropping actions keeps each rank's forward actions in their order, so the
    forward-only plan cannot deadlock where the full one does not.
    """
    full = schedule.pipeline_order_with_comms
    schedule.pipeline_order_with_comms = {
        rank: [kept for a in actions if a is not None for kept in _forward_part(a)]
        for rank, actions in full.items()
    }
    try:
        yield
    finally:
        schedule.pipeline_order_with_comms = full
