"""``preprocess_dataset`` and friends: tokenize a ``datasets`` dataset for causal LM training.

Decision a reader may question: a negative integer in ``select_range`` counts
from the end (``-100`` is 100 records before the end), as Python slices do;
the original Forgather computed ``length - value`` there, past the end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from torch.utils.data import IterableDataset


class IterableDatasetWithLength(IterableDataset):
    """An iterable dataset that still knows its length (for epoch and step counts).

    Unknown attributes and methods are the wrapped dataset's (``state_dict``,
    ``set_epoch`` ...); ``map`` and ``shuffle`` keep the length, ``filter`` drops it.
    """

    def __init__(self, iterable_dataset: Any, length: int):
        self._dataset = iterable_dataset
        self._length = int(length)

    def __len__(self) -> int:
        return self._length

    def __iter__(self):
        return iter(self._dataset)

    def __repr__(self) -> str:
        return f"IterableDatasetWithLength({self._dataset!r}, length={self._length!r})"

    def map(self, *args: Any, **kwargs: Any) -> IterableDatasetWithLength:
        return IterableDatasetWithLength(self._dataset.map(*args, **kwargs), self._length)

    def shuffle(self, *args: Any, **kwargs: Any) -> IterableDatasetWithLength:
        return IterableDatasetWithLength(self._dataset.shuffle(*args, **kwargs), self._length)

    def filter(self, *args: Any, **kwargs: Any) -> Any:
        return self._dataset.filter(*args, **kwargs)  # the new length is unknown

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "_dataset":
            raise AttributeError(name)
        return getattr(self._dataset, name)


def to_iterable_dataset_with_length(dataset: Any, **kwargs: Any) -> IterableDatasetWithLength:
    """``dataset.to_iterable_dataset(**kwargs)`` that keeps ``len()`` (``num_shards=`` ...).

    Raises:
        ValueError: ``dataset`` has no length.
    """
    if isinstance(dataset, IterableDatasetWithLength):
        return dataset
    if not hasattr(dataset, "__len__"):
        raise ValueError("to_iterable_dataset_with_length: the dataset has no length")
    return IterableDatasetWithLength(dataset.to_iterable_dataset(**kwargs), len(dataset))


def normalize_range(
    length: int, select_range: range | int | float | Sequence | None
) -> range | None:
    """Turn a record selection into a ``range`` within ``[0, length]``.

    ``None`` -> ``None``; ``500`` -> the first 500; ``0.25`` -> the first
    quarter; ``[100, 0.9]`` -> ``range(100, 0.9 * length)``; ``(1, 1.0, 4)``
    -> every 4th from 1; a ``range`` is returned as is.

    Raises:
        ValueError: another type.
    """

    def bound(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"a dataset range value must be an int or float, got {value!r}")
        if isinstance(value, float):
            value = int(value * length)
        elif value < 0:
            value = length + value
        return min(max(value, 0), length)

    if select_range is None or isinstance(select_range, range):
        return select_range
    if isinstance(select_range, (int, float)) and not isinstance(select_range, bool):
        return range(bound(select_range))
    if isinstance(select_range, Sequence) and not isinstance(select_range, str):
        values = list(select_range)
        if len(values) == 3:  # (start, stop, step): the step is a count, not a fraction
            return range(bound(values[0]), bound(values[1]), int(values[2]))
        return range(*(bound(v) for v in values))
    raise ValueError(f"unsupported dataset range: {select_range!r}")


def default_tokenize_map_fn(element: dict, tokenizer: Any, feature: str, **kwargs: Any) -> dict:
    """Tokenize ``element[feature]`` (a batch) and keep only ``input_ids``."""
    return {"input_ids": tokenizer(element[feature], **kwargs)["input_ids"]}


def preprocess_dataset(
    dataset: Any,
    tokenizer: Any,
    *,
    select_range: range | int | float | Sequence | None = None,
    to_iterable: bool = False,
    feature: str = "text",
    shuffle: bool = False,
    num_shards: int = 256,
    distributed_environment: Any = None,
    desc: str = "Tokenizing Dataset",
    seed: int = 42,
    shuffle_buffer_size: int = 10000,
    map_fn: Callable[..., dict] = default_tokenize_map_fn,
    map_kwargs: dict | None = None,
    fn_kwargs: dict | None = None,
    dataset_type: Literal["map", "iterable"] | None = None,
    dataset_length: int | None = None,
) -> Any:
    """Select, shuffle, shard and tokenize a ``datasets`` dataset (``dataset.map``, batched).

    Args:
        dataset: a ``datasets.Dataset`` or ``IterableDataset``.
        tokenizer: passed to ``map_fn`` with ``feature``.
        select_range: records to keep (see :func:`normalize_range`).
        to_iterable: make a map-style dataset iterable (``num_shards`` shards), keeping its length.
        feature: the text column.
        shuffle: shuffle first (iterable: with ``shuffle_buffer_size``).
        num_shards: shards of the iterable dataset.
        distributed_environment: with ``rank`` and ``world_size``: keep this process's share.
        desc: progress description (map-style).
        seed: shuffling seed.
        shuffle_buffer_size: buffer of an iterable shuffle.
        map_fn: ``fn(batch, tokenizer=, feature=, **fn_kwargs) -> dict``.
        map_kwargs: more ``dataset.map`` arguments (override the defaults).
        fn_kwargs: more ``map_fn`` arguments (``truncation``, ``max_length`` ...).
        dataset_type: ``"map"`` or ``"iterable"`` when the type cannot be told.
        dataset_length: the length of an iterable dataset that has none.

    Returns:
        The tokenized dataset (the input columns removed).
    """
    if dataset_type not in (None, "map", "iterable"):
        raise ValueError(f"dataset_type must be None, 'map' or 'iterable'; got {dataset_type!r}")
    import datasets

    fn_kwargs = {"tokenizer": tokenizer, "feature": feature, **(fn_kwargs or {})}
    map_kwargs = {
        "batched": True,
        "remove_columns": dataset.column_names,
        "fn_kwargs": fn_kwargs,
        **(map_kwargs or {}),
    }
    if select_range is not None:
        dataset = dataset.select(normalize_range(len(dataset), select_range))
    if dataset_type == "map" or isinstance(dataset, datasets.Dataset):
        if to_iterable:
            dataset = to_iterable_dataset_with_length(dataset, num_shards=num_shards)
            if shuffle:
                dataset = dataset.shuffle(buffer_size=shuffle_buffer_size, seed=seed)
        else:
            map_kwargs["desc"] = desc
            if shuffle:
                dataset = dataset.shuffle(seed=seed)
    else:
        if not hasattr(dataset, "__len__") and dataset_length:
            dataset = IterableDatasetWithLength(dataset, dataset_length)
        if shuffle:
            dataset = dataset.shuffle(buffer_size=shuffle_buffer_size, seed=seed)
    if distributed_environment is not None:
        from datasets.distributed import split_dataset_by_node

        dataset = split_dataset_by_node(
            dataset,
            world_size=distributed_environment.world_size,
            rank=distributed_environment.rank,
        )
    return dataset.map(map_fn, **map_kwargs)
