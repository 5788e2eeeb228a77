"""Batch examples for causal language modelling: pad, build attention masks and labels.

Labels follow the Hugging Face convention: ``labels`` is aligned with ``input_ids``
(not shifted) and the model shifts them, so ``labels[t]`` is the target of the
logits at ``t - 1``. ``-100`` marks positions that contribute no loss.

Decision a reader may question: the label of each document's first token is -100
too (where ``position_ids`` restart at 0). The logits before it belong to the
previous document in a packed block; predicting across that boundary would teach
the model to guess a new document from an unrelated one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

IGNORE_INDEX = -100  # the ignore_index of torch.nn.functional.cross_entropy


@dataclass
class CausalLMCollator:
    """Collate ``{"input_ids", ["position_ids"], ["labels"]}`` examples into a right-padded batch.

    Examples that carry ``labels`` (chat data: -100 outside the assistant's turns)
    keep them; otherwise labels are the input ids.

    Args:
        pad_token_id: id written into padded positions (never a target).
        pad_to_multiple_of: round the batch length up to a multiple of this (e.g. 8
            for tensor cores); None pads to the longest example.
        max_length: truncate longer examples to this many tokens; None keeps all.
        mask_document_starts: set labels to -100 where a document starts (see module doc).

    Calling it returns int64 tensors of shape (batch, length): ``input_ids``,
    ``attention_mask`` (1 = real token), ``position_ids`` (0 on padding) and ``labels``.
    """

    pad_token_id: int
    pad_to_multiple_of: int | None = None
    max_length: int | None = None
    mask_document_starts: bool = True

    def __call__(
        self, examples: Sequence[Mapping[str, torch.Tensor | Sequence[int]]]
    ) -> dict[str, torch.Tensor]:
        if not examples:
            raise ValueError("cannot collate an empty list of examples")
        ids = [torch.as_tensor(e["input_ids"], dtype=torch.int64) for e in examples]
        positions = [
            torch.as_tensor(e["position_ids"], dtype=torch.int64)
            if "position_ids" in e
            else torch.arange(len(i), dtype=torch.int64)
            for e, i in zip(examples, ids, strict=True)
        ]
        given = [
            torch.as_tensor(e["labels"], dtype=torch.int64) if "labels" in e else i
            for e, i in zip(examples, ids, strict=True)
        ]
        if self.max_length is not None:
            ids = [i[: self.max_length] for i in ids]
            positions = [p[: self.max_length] for p in positions]
            given = [g[: self.max_length] for g in given]
        length = max(len(i) for i in ids)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of

        batch = len(ids)
        input_ids = torch.full((batch, length), self.pad_token_id, dtype=torch.int64)
        position_ids = torch.zeros((batch, length), dtype=torch.int64)
        attention_mask = torch.zeros((batch, length), dtype=torch.int64)
        labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.int64)
        for row, (i, p, g) in enumerate(zip(ids, positions, given, strict=True)):
            input_ids[row, : len(i)] = i
            position_ids[row, : len(p)] = p
            attention_mask[row, : len(i)] = 1
            labels[row, : len(g)] = g

        if self.mask_document_starts:
            labels = labels.masked_fill((position_ids == 0) & (attention_mask == 1), IGNORE_INDEX)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "labels": labels,
        }
