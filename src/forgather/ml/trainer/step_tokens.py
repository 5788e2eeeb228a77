"""Token counts of one optimizer step: what its loss is averaged over, and what throughput counts.

The step loss is the mean over every target token of the step — all
micro-batches of gradient accumulation on all data-parallel ranks — exactly
what one process computing the whole global batch at once would report and
differentiate. Each rank counts the target tokens of its micro-batches before
any forward pass, one all-reduce sums them into the step's total `N`, and
each micro-batch's loss (the model's own mean over its `n_i` targets) is
weighted by `n_i / N`. `num_input_tokens_seen` is summed over the ranks in the
same all-reduce, so token counts and tokens/s are totals for the whole job.

The decision a reader may question: the trainer re-weights the loss the model
returns instead of passing `num_items_in_batch` into the model as Hugging
Face's Trainer does. Any model whose loss is the mean over its target tokens
(the Hugging Face convention: `labels` shifted inside the model, -100 ignored)
then gets the global token mean, whether or not its forward accepts that
argument. A batch without `labels` gives every micro-batch the same weight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from forgather.ml.data.collator import IGNORE_INDEX

__all__ = ["IGNORE_INDEX", "StepTokens", "count_input_tokens", "count_target_tokens"]


def count_target_tokens(batch: Any) -> int | None:
    """Targets a causal-LM loss of `batch` averages over; None when it has no `labels`.

    Position t predicts label t+1, so the first label of every row is never a
    target; the others count unless they are `IGNORE_INDEX`.
    """
    labels = batch.get("labels") if isinstance(batch, dict) else None
    if not isinstance(labels, torch.Tensor):
        return None
    return int((labels[..., 1:] != IGNORE_INDEX).sum())


def count_input_tokens(batch: Any) -> int:
    """Elements of `input_ids` (padding included): what the model computes on."""
    if isinstance(batch, dict) and isinstance(batch.get("input_ids"), torch.Tensor):
        return batch["input_ids"].numel()
    return 0


@dataclass(frozen=True)
class StepTokens:
    """One step's counts on this rank, and the step's totals over every data-parallel rank.

    Attributes:
        targets: Target tokens of each of this rank's micro-batches (1 each when unknown).
        total_targets: Target tokens of the whole step, all ranks.
        total_inputs: Input tokens of the whole step, all ranks.
    """

    targets: tuple[int, ...]
    total_targets: int
    total_inputs: int

    @classmethod
    def count(
        cls,
        batches: list[Any],
        count_targets: Callable[[Any], int | None],
        sum_over_replicas: Callable[[torch.Tensor], torch.Tensor],
    ) -> StepTokens:
        """Count `batches` (this rank's micro-batches) and sum over the replicas (a collective).

        Args:
            batches: The step's micro-batches, before they are moved to the device
                (counting then needs no device synchronisation).
            count_targets: Targets of one batch, or None when unknown.
            sum_over_replicas: Sums a tensor over the data-parallel ranks.
        """
        targets = [count_targets(b) for b in batches]
        if any(t is None for t in targets):
            targets = [1] * len(batches)  # unknown: every micro-batch weighs the same
        local = torch.tensor([sum(targets), sum(count_input_tokens(b) for b in batches)])
        total_targets, total_inputs = (int(v) for v in sum_over_replicas(local).tolist())
        return cls(tuple(targets), total_targets, total_inputs)

    def weight(self, micro_batch: int) -> float:
        """The share of the step's loss that micro-batch `micro_batch` of this rank carries."""
        return self.targets[micro_batch] / max(self.total_targets, 1)
