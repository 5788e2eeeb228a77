"""`BatchStream` positions: resuming gives the batches an uninterrupted stream gives."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import IterableDataset

from forgather.ml.data import ResumableSampler
from forgather.ml.trainer import ResumableShuffleSampler
from forgather.ml.trainer.batch_stream import BatchStream, resumable_dataloader

ROWS = [torch.tensor([i]) for i in range(10)]


def stream(sampler, dataset=ROWS, num_workers=0, batch_size=3):
    loader = resumable_dataloader(dataset, batch_size, sampler, num_workers=num_workers)
    return BatchStream(loader, seed=1)


def take(batches, n):
    return [next(batches).flatten().tolist() for _ in range(n)]


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("sampler_class", [ResumableShuffleSampler, ResumableSampler])
def test_stateful_sampler_resumes_mid_epoch_despite_prefetch(num_workers, sampler_class):
    """Ours, and the data pipeline's sampler, which has the same protocol."""
    full = take(stream(sampler_class(10, seed=3)), 9)  # 4 batches per epoch
    first = stream(sampler_class(10, seed=3), num_workers=num_workers)
    assert take(first, 5) == full[:5]
    state = first.state_dict()
    assert state["epoch"] == 1 and state["batch_in_epoch"] == 1
    # With workers the live sampler has run ahead of the batches handed out; the
    # saved state is the snapshot taken when the last handed-out batch was drawn.
    live = first.dataloader.batch_sampler.sampler.state_dict()
    assert (live != state["sampler"]) == (num_workers > 0)
    assert state["sampler"]["position"] == 3
    second = stream(sampler_class(10, seed=3), num_workers=num_workers)
    second.load_state_dict(state)
    assert take(second, 4) == full[5:]


def test_epochs_reshuffle_and_cover_the_data():
    batches = take(stream(ResumableShuffleSampler(10, seed=3)), 8)
    epoch0 = sorted(x for b in batches[:4] for x in b)
    epoch1 = sorted(x for b in batches[4:] for x in b)
    assert epoch0 == epoch1 == list(range(10))
    assert batches[:4] != batches[4:]


def test_stateless_sampler_resumes_by_skipping_indices():
    order = [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]
    first = stream(order)
    take(first, 2)
    second = stream(order)
    second.load_state_dict(first.state_dict())
    assert take(second, 3) == [[3, 2, 1], [0], [9, 8, 7]]
    assert second.epoch_progress == pytest.approx(1.25)


class Counting(IterableDataset):
    def __iter__(self):
        yield from ROWS


def test_iterable_dataset_resumes_by_discarding_batches():
    first = stream(None, dataset=Counting())
    take(first, 3)
    second = stream(None, dataset=Counting())
    second.load_state_dict(first.state_dict())
    assert take(second, 2) == [[9], [0, 1, 2]]
    assert second.batches_per_epoch is None


def test_empty_data_is_an_error():
    with pytest.raises(ValueError, match="yields no batches"):
        next(stream(ResumableShuffleSampler(0), dataset=[]))
