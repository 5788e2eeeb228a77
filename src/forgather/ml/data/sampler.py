"""A sampler whose order is a function of (seed, epoch) and whose position can be saved.

``ResumableSampler`` yields the indices of one epoch from where it stands; when an
epoch is exhausted it moves to the next. ``state_dict()`` is four integers, so a
checkpoint can restore it in a new process and continue with exactly the indices an
uninterrupted run would have produced.

Decision a reader may question: the sampler counts the indices it has *handed out*.
A ``DataLoader`` with worker processes fetches a few batches ahead, so for such a
loader the trainer should save ``state_at(samples_consumed)`` instead of
``state_dict()``; with ``num_workers=0`` (or when the trainer counts) the two agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled (or sequential) indices, sharded over ranks, resumable mid-epoch.

    Args:
        data_source: the dataset (only its length is used), or the length itself.
        seed: the permutation of epoch ``e`` is drawn from a generator seeded with
            ``seed + e``: every rank and every restart agrees on it.
        shuffle: False yields ``0, 1, 2, ...`` every epoch.
        num_replicas: ranks sharing the dataset; each gets every ``num_replicas``-th
            index of the epoch's permutation, offset by ``rank``.
        rank: this process's rank.
        drop_last: drop the tail of the permutation so every rank gets the same
            count; if False the permutation is padded by wrapping around instead.
    """

    def __init__(
        self,
        data_source: Sized | int,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ):
        self.num_samples_total = data_source if isinstance(data_source, int) else len(data_source)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.seed = seed
        self.shuffle = shuffle
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0
        self.position = 0  # indices of the current epoch already handed out by this rank

    def __len__(self) -> int:
        """Indices per epoch for this rank."""
        n, r = self.num_samples_total, self.num_replicas
        return n // r if self.drop_last else -(-n // r)

    def epoch_indices(self, epoch: int) -> list[int]:
        """This rank's indices for ``epoch``, in order (a pure function of the arguments)."""
        n = self.num_samples_total
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        total = len(self) * self.num_replicas
        if total > n:  # pad by wrapping so every rank gets len(self) indices
            order += (order * (total // max(n, 1) + 1))[: total - n]
        return order[self.rank : total : self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices(self.epoch)
        while self.position < len(indices):
            index = indices[self.position]
            self.position += 1
            yield index
        self.epoch += 1
        self.position = 0

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning (for trainers that set epochs explicitly)."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.position = 0

    def state_dict(self) -> dict[str, int]:
        """Where the sampler stands: restore with :meth:`load_state_dict`."""
        return self.state_at(self.position)

    def state_at(self, position: int) -> dict[str, int]:
        """The state after ``position`` indices of the current epoch were consumed."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "position": position,
            "num_samples_total": self.num_samples_total,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from ``state``; the next index is the one after the saved position.

        Raises:
            ValueError: the state belongs to a dataset of another size or another seed
                (resuming would silently yield other examples).
        """
        if state["num_samples_total"] != self.num_samples_total or state["seed"] != self.seed:
            raise ValueError(
                f"sampler state for {state['num_samples_total']} samples with seed {state['seed']} "
                f"cannot resume a sampler over {self.num_samples_total} samples with seed {self.seed}"
            )
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])
