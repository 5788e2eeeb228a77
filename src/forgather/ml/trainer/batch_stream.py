"""`BatchStream`: the training batches as one endless stream over epochs, with a position.

The loop asks for "the next batch" and never sees epoch boundaries; the stream
re-seeds and restarts the DataLoader at each one and knows how far it is
(epoch, batches consumed in the epoch), which is what a checkpoint records.

The decision a reader may question: with worker processes a DataLoader draws
indices ahead of the batches the loop has consumed, so asking the sampler for
its state at save time would skip the prefetched batches on resume. The
DataLoader is therefore built on `_TrackedBatchSampler`, which snapshots the
sampler's `state_dict()` as each batch of indices is drawn; the stream keeps the
snapshot of the batch it actually handed out. Samplers without a state are
resumed by re-drawing and discarding that epoch's consumed index batches
(cheap: no data is loaded), iterable datasets by discarding whole batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, IterableDataset, Sampler

__all__ = ["BatchStream", "resumable_dataloader"]


class _TrackedBatchSampler(Sampler[list[int]]):
    """Batches of indices from `sampler`, remembering the sampler state after each batch."""

    def __init__(self, sampler: Sampler, batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batches = BatchSampler(sampler, batch_size, drop_last)
        self.stateful = hasattr(sampler, "state_dict") and hasattr(sampler, "load_state_dict")
        self.snapshots: deque[Any] = deque()  # one per batch drawn but not yet consumed
        self.skip = 0  # index batches to discard at the start of the next iteration

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        self.snapshots.clear()
        skip, self.skip = self.skip, 0
        for i, batch in enumerate(self.batches):
            if i < skip:
                continue
            if self.stateful:
                self.snapshots.append(self.sampler.state_dict())
            yield batch


def resumable_dataloader(
    dataset: Dataset,
    batch_size: int,
    sampler: Sampler | None,
    collate_fn: Callable | None = None,
    drop_last: bool = False,
    **loader_kwargs: Any,
) -> DataLoader:
    """A DataLoader that `BatchStream` can position and resume.

    Args:
        dataset: A map-style dataset (with `sampler`) or an `IterableDataset`.
        batch_size: Samples per batch.
        sampler: Order of a map-style dataset; must be None for iterable ones.
        collate_fn: Turns a list of samples into a batch; None: torch's default.
        drop_last: Drop each epoch's last incomplete batch.
        **loader_kwargs: `num_workers`, `pin_memory`, `prefetch_factor`, ...

    Returns:
        The DataLoader. Its `generator` seeds the workers and is re-seeded each
        epoch by the stream, so no draw is taken from the global RNG.
    """
    generator = torch.Generator()
    if isinstance(dataset, IterableDataset):
        return DataLoader(
            dataset, batch_size=batch_size, collate_fn=collate_fn, drop_last=drop_last,
            generator=generator, **loader_kwargs,
        )  # fmt: skip
    if sampler is None:
        raise ValueError("a map-style dataset needs a sampler")
    tracked = _TrackedBatchSampler(sampler, batch_size, drop_last)
    return DataLoader(
        dataset, batch_sampler=tracked, collate_fn=collate_fn, generator=generator, **loader_kwargs
    )


class BatchStream:
    """Endless iterator of training batches across epochs, resumable at any batch.

    Args:
        dataloader: Built by `resumable_dataloader` (any DataLoader works, but
            then resuming re-reads the skipped batches).
        seed: Epoch `e` seeds the DataLoader's worker generator with `seed + e`.
    """

    def __init__(self, dataloader: DataLoader, seed: int = 0) -> None:
        self.dataloader = dataloader
        self.seed = seed
        self.epoch = 0  # index of the current pass over the data
        self.batch_in_epoch = 0  # batches of this pass already handed out
        self._tracked = dataloader.batch_sampler
        if not isinstance(self._tracked, _TrackedBatchSampler):
            self._tracked = None
        self._iterator: Iterator | None = None
        self._sampler_state: Any = None  # sampler state after the last handed-out batch
        self._resuming = False

    @property
    def batches_per_epoch(self) -> int | None:
        """len(dataloader), or None when the dataset has no length."""
        try:
            return len(self.dataloader)
        except TypeError:
            return None

    @property
    def epoch_progress(self) -> float:
        """Passes over the data completed, as a float (2.5: half-way through the third)."""
        per_epoch = self.batches_per_epoch
        return self.epoch + (self.batch_in_epoch / per_epoch if per_epoch else 0.0)

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._start_epoch()
        try:
            batch = next(self._iterator)
        except StopIteration:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            self._start_epoch()
            try:
                batch = next(self._iterator)
            except StopIteration:
                raise ValueError("the training DataLoader yields no batches") from None
        self.batch_in_epoch += 1
        if self._tracked is not None and self._tracked.snapshots:
            self._sampler_state = self._tracked.snapshots.popleft()
        return batch

    def _start_epoch(self) -> None:
        sampler = self._tracked.sampler if self._tracked is not None else None
        dataset = self.dataloader.dataset
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(self.epoch)
        elif sampler is None and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.epoch)  # e.g. a shuffling iterable dataset
        if self.dataloader.generator is not None:
            self.dataloader.generator.manual_seed(self.seed + self.epoch)
        discard = 0
        if self._resuming:
            self._resuming = False
            if self._tracked is not None and self._tracked.stateful and self._sampler_state:
                sampler.load_state_dict(self._sampler_state)
            elif self._tracked is not None:
                self._tracked.skip = self.batch_in_epoch
            else:
                discard = self.batch_in_epoch
        self._iterator = iter(self.dataloader)
        for _ in range(discard):
            next(self._iterator)

    def state_dict(self) -> dict[str, Any]:
        """The position after the last batch handed out."""
        return {
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "sampler": self._sampler_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue after the batch at which `state` was taken."""
        self.epoch = state["epoch"]
        self.batch_in_epoch = state["batch_in_epoch"]
        self._sampler_state = state["sampler"]
        self._iterator = None
        self._resuming = True
