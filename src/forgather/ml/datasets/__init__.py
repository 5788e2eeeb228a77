"""The original Forgather's dataset helpers: ``forgather.ml.datasets``.

Its dataset projects tokenize a ``datasets`` dataset with::

    train_dataset: !singleton:forgather.ml.datasets:preprocess_dataset
        dataset: *train_dataset_split
        tokenizer: *tokenizer
        fn_kwargs: { truncation: True, max_length: 512 }

    # or in blocks, several documents packed into each:
        map_fn: !partial:forgather.ml.datasets:block_tokenize_fn
        fn_kwargs: { max_length: 512, packed: True }

Same names, arguments and results as the original (``datasets`` objects in,
``datasets`` objects out). Our own pipeline (``forgather.ml.data``: text
sources, a tokenization cache, ``PackedDataset``) is the better road for new
projects; these keep old ones running.

Decision a reader may question: the names resolve lazily, so importing this
package for one helper does not load ``datasets`` and ``torch``.
"""

from __future__ import annotations

from forgather._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from forgather.ml.datasets.block_tokenizer import block_tokenize_fn
    from forgather.ml.datasets.datasets import (
        IterableDatasetWithLength,
        default_tokenize_map_fn,
        normalize_range,
        preprocess_dataset,
        to_iterable_dataset_with_length,
    )

__all__ = [
    "IterableDatasetWithLength",
    "block_tokenize_fn",
    "default_tokenize_map_fn",
    "normalize_range",
    "preprocess_dataset",
    "to_iterable_dataset_with_length",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "block_tokenize_fn": "block_tokenizer",
        "IterableDatasetWithLength": "datasets",
        "default_tokenize_map_fn": "datasets",
        "normalize_range": "datasets",
        "preprocess_dataset": "datasets",
        "to_iterable_dataset_with_length": "datasets",
    },
)
