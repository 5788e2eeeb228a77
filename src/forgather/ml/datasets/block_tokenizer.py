"""``block_tokenize_fn``: a batched ``dataset.map`` function that cuts documents into blocks.

Each document is tokenized (bos and eos added when the tokenizer has them),
then written into blocks of at most ``max_length`` tokens:

* ``overflow=True``: a long document continues in the next block (with
  ``stride`` tokens repeated); ``False``: the rest is dropped.
* ``packed=True``: several documents share a block, in order (``"greedy"``),
  or placed by length, longest first, into the fullest block that fits
  (``"best_fit"``) or the first that fits (``"first_fit"``); ``False``: a
  block holds one document.

The result has ``input_ids`` (the blocks) and ``document_starts`` (for each
block, the offsets where a document begins in it), which lets a collator
restart positions at document boundaries.

Decision a reader may question: the ``best_fit``/``first_fit`` strategies
first cut long documents into ``max_length`` pieces and then pack the
pieces, so no piece is ever split twice; the pieces of one document may then
land in any block.
"""

from __future__ import annotations

import random
import re
from typing import Any

STRATEGIES = ("greedy", "best_fit", "first_fit")


class _Block:
    """One output block being filled."""

    def __init__(self, capacity: int, prefix: list[int] | None = None):
        self.capacity = capacity
        self.ids: list[int] = list(prefix or [])
        self.starts: list[int] = []

    def room(self) -> int:
        return self.capacity - len(self.ids)

    def add(self, ids: list[int], document_start: bool) -> None:
        if document_start:
            self.starts.append(len(self.ids))
        self.ids.extend(ids)


def _documents(
    features: dict,
    tokenizer: Any,
    feature: str,
    truncate_at: str | None,
    add_bos: bool,
    add_eos: bool,
) -> list[list[int]]:
    texts = list(features[feature])
    if truncate_at is not None:
        pattern = re.compile(truncate_at)
        texts = [t[: m.start()] if (m := pattern.search(t)) else t for t in texts]
    encoded = tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if add_bos else []
    eos = [tokenizer.eos_token_id] if add_eos else []
    return [bos + list(ids) + eos for ids in encoded]


def _greedy(docs, max_length, overflow, packed, stride, min_len, bos_prefix):
    if len(bos_prefix) + stride >= max_length:
        raise ValueError("block_tokenize_fn: stride (plus bos) must be less than max_length")
    blocks: list[_Block] = []
    block = _Block(max_length)

    def finish(continued: bool) -> _Block:
        # A block shorter than min_len is dropped. A document continued in the
        # next block starts it with bos and the last `stride` tokens.
        if len(block.ids) >= min_len:
            blocks.append(block)
        prefix = (bos_prefix + (block.ids[-stride:] if stride else [])) if continued else []
        return _Block(max_length, prefix)

    for doc in docs:
        if not packed and block.ids:
            block = finish(False)
        pos = 0
        while pos < len(doc):
            take = min(block.room(), len(doc) - pos)
            block.add(doc[pos : pos + take], pos == 0)
            pos += take
            if not overflow:
                block = finish(False)
                break
            if block.room() < min_len:
                block = finish(pos < len(doc))
    if block.ids and len(block.ids) >= min_len:
        blocks.append(block)
    return blocks


def _bin_pack(docs, max_length, overflow, stride, strategy):
    pieces: list[tuple[list[int], bool]] = []  # (ids, starts a document)
    for doc in docs:
        if not overflow:
            pieces.append((doc[:max_length], True))
            continue
        step = max(max_length - stride, 1)
        for start in range(0, len(doc), step):
            pieces.append((doc[start : start + max_length], start == 0))
            if start + max_length >= len(doc):
                break
    pieces.sort(key=lambda p: len(p[0]), reverse=True)
    blocks: list[_Block] = []
    for ids, first in pieces:
        fitting = [b for b in blocks if b.room() >= len(ids)]
        if not fitting:
            target = _Block(max_length)
            blocks.append(target)
        elif strategy == "best_fit":
            target = min(fitting, key=_Block.room)
        else:
            target = fitting[0]
        target.add(ids, first or not target.ids)
    return blocks


def block_tokenize_fn(
    features: dict[str, Any],
    tokenizer: Any,
    feature: str,
    max_length: int = 512,
    overflow: bool = True,
    packed: bool = False,
    packing_strategy: str = "greedy",
    shuffle_output: bool = False,
    seed: int | None = 42,
    stride: int = 0,
    min_len: int = 1,
    max_len: int | None = None,
    add_bos: bool = True,
    add_eos: bool = True,
    truncate_at: str | None = None,
    **kwargs: Any,
) -> dict[str, list]:
    """Tokenize a batch of documents into blocks of at most ``max_length`` tokens.

    Args:
        features: the batch (column name -> values).
        tokenizer: a transformers tokenizer.
        feature: the text column.
        max_length: tokens per block.
        overflow: continue a long document in the next block; else drop the rest.
        packed: let documents share blocks.
        packing_strategy: ``"greedy"``, ``"best_fit"`` or ``"first_fit"`` (module docstring).
        shuffle_output: shuffle the blocks (``best_fit``/``first_fit`` order them by length).
        seed: the shuffle's seed (``None``: not reproducible).
        stride: tokens of a split document repeated at the start of its next block.
        min_len: drop documents (and blocks) shorter than this.
        max_len: drop documents longer than this (tokens, bos included).
        add_bos: start each document with bos (if the tokenizer has one).
        add_eos: end each document with eos (if the tokenizer has one).
        truncate_at: a regular expression; each text is cut at its first match.
        **kwargs: ignored (``dataset.map`` passes nothing else; old configs may).

    Returns:
        ``{"input_ids": blocks, "document_starts": offsets per block}``.

    Raises:
        ValueError: a bad ``min_len``, ``max_length`` or strategy.
    """
    if min_len < 1 or max_length < 1:
        raise ValueError("block_tokenize_fn: min_len and max_length must be at least 1")
    if packing_strategy not in STRATEGIES:
        raise ValueError(f"packing_strategy must be one of {STRATEGIES}; got {packing_strategy!r}")
    add_bos = add_bos and tokenizer.bos_token_id is not None
    add_eos = add_eos and tokenizer.eos_token_id is not None
    docs = _documents(features, tokenizer, feature, truncate_at, add_bos, add_eos)
    bos_len = 1 if add_bos else 0
    eos_len = 1 if add_eos else 0
    docs = [
        d
        for d in docs
        if len(d) - eos_len >= min_len and (max_len is None or len(d) - eos_len <= max_len)
    ]
    if packed and packing_strategy != "greedy":
        blocks = _bin_pack(docs, max_length, overflow, stride, packing_strategy)
        if shuffle_output:
            random.Random(seed).shuffle(blocks)
    else:
        bos_prefix = [tokenizer.bos_token_id] if bos_len else []
        blocks = _greedy(docs, max_length, overflow, packed, stride, min_len, bos_prefix)
    return {"input_ids": [b.ids for b in blocks], "document_starts": [b.starts for b in blocks]}
