"""`ResumableShuffleSampler`: the trainer's default shuffling, resumable mid-epoch.

Epoch `e` visits the dataset in the order `randperm(n)` drawn from a generator
seeded with `seed + e`, so the order depends only on (seed, epoch) and not on
the global RNG: a resumed run sees the same batches as an uninterrupted one.
`state_dict()` records (epoch, position); after `load_state_dict()` the next
iteration continues from that position, and later ones start whole epochs.

The trainer uses it when it is not given a sampler of its own; any sampler with
the same `set_epoch` / `state_dict` / `load_state_dict` methods (such as the
data pipeline's) can take its place.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["ResumableShuffleSampler"]


class ResumableShuffleSampler(Sampler[int]):
    """Per-epoch seeded permutation of `range(num_samples)` that can resume mid-epoch.

    Args:
        num_samples: Size of the dataset.
        seed: Base seed; epoch `e` uses `seed + e`.
        shuffle: False visits samples in order (still resumable).
    """

    def __init__(self, num_samples: int, seed: int = 0, shuffle: bool = True) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0  # samples of the current epoch already yielded

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of `epoch` and start at its beginning."""
        self.epoch = epoch
        self.position = 0

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.num_samples, generator=gen).tolist()
        else:
            order = list(range(self.num_samples))
        while self.position < self.num_samples:
            index = order[self.position]
            self.position += 1
            yield index
        # The pass is over: a new iteration without set_epoch() starts the next epoch.
        self.epoch += 1
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        """The position: epoch and samples already yielded in it."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from a position returned by `state_dict()`."""
        self.epoch = state["epoch"]
        self.position = state["position"]
        self.seed = state["seed"]
