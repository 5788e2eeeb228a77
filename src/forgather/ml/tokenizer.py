"""``train_tokenizer``: the original Forgather's tokenizer recipe, from its parts.

The original's tokenizer projects describe a tokenizer piece by piece and
train it from a ``datasets`` dataset::

    tokenizer_trainer: !partial:forgather.ml.tokenizer:train_tokenizer
        output_dir: "{{ joinpath(tokenizers_dir, 'wikitext_2k') }}"
        dataset: *tokenizer_dataset
        args: *tokenizer_args          # PreTrainedTokenizerFast arguments (special tokens ...)
        model: !call:tokenizers:models.BPE { unk_token: "<|UNK|>" }
        pre_tokenizer: ...; decoder: ...; post_processor: ...; normalizer: ...
        trainer: !call:tokenizers.trainers:BpeTrainer { vocab_size: 2000 }
        feature: "text"

Same arguments and result (a ``save_pretrained`` directory) as the original;
saving goes through :func:`forgather.ml.data.save_tokenizer`.

Decision a reader may question: training prints nothing and shows no progress
bar; it logs one line with the sample count and time, as our data pipeline does.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

from forgather.ml.datasets.datasets import normalize_range

log = logging.getLogger("forgather.ml.data")

__all__ = ["normalize_range", "train_tokenizer"]


def _batches(dataset: Any, feature: str, batch_size: int) -> Iterator[list[str]]:
    if hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"):
        for start in range(0, len(dataset), batch_size):
            yield dataset[start : start + batch_size][feature]
        return
    batch: list[str] = []
    for record in dataset:  # an iterable dataset
        batch.append(record[feature])
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def train_tokenizer(
    *,
    model: Any,
    trainer: Any,
    dataset: Any,
    output_dir: str | os.PathLike,
    args: dict[str, Any] | None = None,
    normalizer: Any = None,
    pre_tokenizer: Any = None,
    post_processor: Any = None,
    decoder: Any = None,
    feature: str = "text",
    select_range: range | int | float | Sequence | None = None,
    batch_size: int = 1000,
) -> None:
    """Train a ``tokenizers`` tokenizer from its parts and save it as a fast tokenizer.

    Args:
        model: a ``tokenizers.models`` instance (``BPE(...)``).
        trainer: the matching ``tokenizers.trainers`` instance (vocabulary size, special tokens).
        dataset: a ``datasets`` dataset (or any sequence/iterable of records).
        output_dir: where ``save_pretrained`` writes the tokenizer.
        args: keyword arguments of ``PreTrainedTokenizerFast`` (special tokens,
            ``model_max_length``, ``padding_side`` ...).
        normalizer, pre_tokenizer, post_processor, decoder: the tokenizer's other parts.
        feature: the text column of the dataset.
        select_range: train on part of the dataset (see :func:`normalize_range`).
        batch_size: records per batch given to the trainer.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from forgather.ml.data import save_tokenizer

    tokenizer = Tokenizer(model)
    for part, value in (
        ("normalizer", normalizer),
        ("pre_tokenizer", pre_tokenizer),
        ("post_processor", post_processor),
        ("decoder", decoder),
    ):
        if value is not None:
            setattr(tokenizer, part, value)
    if select_range is not None:
        dataset = dataset.select(normalize_range(len(dataset), select_range))
    start = time.perf_counter()
    tokenizer.train_from_iterator(_batches(dataset, feature, batch_size), trainer=trainer)
    log.info("trained a tokenizer in %.1f s", time.perf_counter() - start)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **(args or {}))
    save_tokenizer(fast, output_dir)
