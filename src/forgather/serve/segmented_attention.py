"""Decode-step attention that reads each group of rows' own columns, not the batch's padding.

In a decode step every row of the batch attends over the same right-aligned
columns (see ``kv_batch.py``), so a 30-token row next to a 240-token row reads
210 masked columns of keys and values. At 32 rows on a small model the step is
bound by reading those keys and values (SDPA was ~40% of a step). This module
registers an attention implementation, ``forgather_segmented_sdpa``, that runs
transformers' own SDPA attention once per group of consecutive rows on the
columns that group needs: the scheduler keeps rows roughly sorted by length
(:meth:`~forgather.serve.kv_batch.PaddedKVBatch.sort_rows`) and passes the
groups for the step with :func:`decode_segments`. Outside that context (prefill,
``generate()``, other threads) it is plain ``sdpa``.

Decision a reader may question: only models on ``sdpa`` that are known to
build sdpa's masks for it are switched to it (:func:`enable`): transformers'
own model classes, and Forgather-generated models that say so
(``masks_follow_registered_implementations``; generated before that, their
attention chose masks by the implementation's name alone, so they keep
``sdpa`` and the padded step). A row's
numbers are those of attending over fewer masked columns; masked columns get
exactly zero weight either way, so the result is the same up to the order of
floating-point sums, as with padding itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

NAME = "forgather_segmented_sdpa"

_state = threading.local()


def segmented_sdpa_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, run per row group during a decode step.

    Shapes: query (B, H, 1, D), key/value (B, H_kv, S, D), mask (B, 1, 1, S)
    bool or None; returns (B, 1, H, D) as ``sdpa_attention_forward`` does.
    """
    segments = getattr(_state, "segments", None)
    if segments is None or query.shape[2] != 1 or len(segments) < 2:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    outputs = []
    for first, last, column in segments:
        mask = None
        if attention_mask is not None:
            # A mask may broadcast over the batch (ALiBi's bias without padding, say).
            rows = slice(None) if attention_mask.shape[0] == 1 else slice(first, last)
            mask = attention_mask[rows, ..., column:]
        output, _ = sdpa_attention_forward(
            module,
            query[first:last],
            key[first:last, :, column:],
            value[first:last, :, column:],
            mask,
            **kwargs,
        )
        outputs.append(output)
    return torch.cat(outputs), None


ALL_ATTENTION_FUNCTIONS.register(NAME, segmented_sdpa_forward)
ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)


def enable(model: Any) -> bool:
    """Switch a model from ``sdpa`` to the segmented implementation.

    Returns:
        True when the model now uses it (a transformers model class or a
        generated model that follows registered masks, on ``sdpa``, or already
        on this implementation).
    """
    config = model.config
    own_class = type(model).__module__.startswith("transformers.models.")
    # A Forgather-generated model builds the mask its implementation's registered mask
    # function names (older generated models do not, and keep plain sdpa).
    if not own_class and not getattr(model, "masks_follow_registered_implementations", False):
        return False
    implementation = getattr(config, "_attn_implementation", None)
    if implementation == "sdpa":
        config._attn_implementation = implementation = NAME
    return implementation == NAME


@contextlib.contextmanager
def decode_segments(segments: list[tuple[int, int, int]]) -> Iterator[None]:
    """Within the block, decode attention on this thread runs per row group.

    Args:
        segments: (first row, end row, first key column) of consecutive row
            groups covering the batch, columns counted in the cache's keys.
    """
    _state.segments = segments
    try:
        yield
    finally:
        _state.segments = None
