"""The original Forgather's `DataCollatorForCausalLM`, on our `CausalLMCollator`.

Its configs build it from a tokenizer and the keyword arguments of the
tokenizer's ``pad``::

    data_collator: !singleton:forgather.ml.data_collator:DataCollatorForCausalLM
        tokenizer: *tokenizer
        return_tensors: pt
        truncation: True
        max_length: 512
        padding: "max_length"    # optional: pad every batch to max_length

Batches are right-padded (the tokenizer's ``padding_side`` is not used);
``labels`` are the input ids with padding set to -100, and the output holds
``input_ids``, ``attention_mask``, ``position_ids`` and ``labels`` (our
collator's batch). Packed examples carrying ``document_starts`` get position
ids that restart at each document; ``packed_sequences=True`` without them
restarts positions after each EOS token, as the original does.

Differences on purpose, both about which tokens are targets: a real token
whose id equals the pad id (the EOS token, when a tokenizer pads with it) is
still a target here, where the original masked every occurrence; and the
first token of each packed document is not a target of the token before it
(the previous document's last), see `forgather.ml.data.collator`.

The decision a reader may question: padding and truncation are done here, not
by ``tokenizer.pad``. Our collator already pads ``input_ids`` and
``position_ids`` together; the tokenizer would need to know about
``position_ids`` and ``document_starts``, and copying the tokenizer to change
its padding side (as the original did) is unneeded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from forgather.ml.data.collator import IGNORE_INDEX, CausalLMCollator

__all__ = ["DataCollatorForCausalLM", "get_pos_ids_for_packed_sequence"]

logger = logging.getLogger(__name__)

# Keyword arguments of `tokenizer.pad` that are accepted and how they are honoured.
_PAD_KWARGS = {
    "padding",
    "max_length",
    "pad_to_multiple_of",
    "padding_side",
    "return_attention_mask",
    "return_tensors",
    "verbose",
}


def _positions_from_starts(length: int, starts: Sequence[int]) -> torch.Tensor:
    """(length,) positions restarting at 0 at each document start."""
    positions = torch.arange(length, dtype=torch.int64)
    begin = torch.zeros(length, dtype=torch.int64)
    for start in sorted(int(s) for s in starts if 0 <= int(s) < length):
        begin[start:] = start
    return positions - begin


def _positions_after_token(ids: torch.Tensor, token_id: int) -> torch.Tensor:
    """(T,) positions restarting after each occurrence of `token_id`."""
    starts = [0] + [int(i) + 1 for i in (ids == token_id).nonzero().flatten()]
    return _positions_from_starts(len(ids), starts)


def get_pos_ids_for_packed_sequence(
    x: torch.Tensor,
    token_id: int | None = None,
    document_starts: torch.Tensor | None = None,
    eos: bool = True,
) -> torch.Tensor:
    """(B, T) position ids restarting at each document of packed rows.

    Args:
        x: (B, T) token ids.
        token_id: Boundary token (used when `document_starts` is None).
        document_starts: (B, D) start offsets per row, padded with -1.
        eos: With `token_id`: restart after the token (True) or at it (False).
    """
    if document_starts is not None:
        return torch.stack(
            [_positions_from_starts(x.shape[1], row.tolist()) for row in document_starts]
        )
    if token_id is None:
        raise ValueError("give document_starts or the boundary token_id")
    rows = []
    for row in x:
        starts = [0] + [int(i) + int(eos) for i in (row == token_id).nonzero().flatten()]
        rows.append(_positions_from_starts(x.shape[1], starts))
    return torch.stack(rows)


class DataCollatorForCausalLM:
    """Pad tokenized examples into a causal-LM batch (see the module docstring).

    Args:
        tokenizer: Gives `pad_token_id` (or `eos_token_id` when it has no pad
            token), `eos_token_id` and `model_max_length`.
        truncation: Cut examples to `max_length` (default the tokenizer's `model_max_length`).
        ignore_index: Must be -100, the trainers' convention.
        input_name: The key of the token ids in the output batch.
        labels_name: The key of the labels; None returns `(batch, labels)`.
        packed_sequences: None: position ids from `document_starts` when the
            examples have them; True: also from EOS tokens otherwise; False: never.
        **pad_kwargs: `tokenizer.pad` options: `padding` (True/"longest",
            "max_length", False: pad to the longest all the same),
            `max_length`, `pad_to_multiple_of`, `return_tensors` ("pt" only).
    """

    def __init__(
        self,
        tokenizer: Any,
        truncation: bool = False,
        ignore_index: int = IGNORE_INDEX,
        input_name: str = "input_ids",
        labels_name: str | None = "labels",
        packed_sequences: bool | None = None,
        **pad_kwargs: Any,
    ) -> None:
        unknown = set(pad_kwargs) - _PAD_KWARGS
        if unknown:
            raise TypeError(
                f"DataCollatorForCausalLM: unknown arguments {sorted(unknown)}; "
                f"padding options are {sorted(_PAD_KWARGS)}"
            )
        if ignore_index != IGNORE_INDEX:
            raise ValueError(
                f"DataCollatorForCausalLM: ignore_index={ignore_index} is not supported; "
                f"the trainers and losses ignore {IGNORE_INDEX}"
            )
        if pad_kwargs.get("return_tensors", "pt") != "pt":
            raise ValueError("DataCollatorForCausalLM: only return_tensors='pt' is supported")
        if pad_kwargs.get("padding_side", "right") != "right":
            raise ValueError("DataCollatorForCausalLM: batches are right-padded (padding_side)")
        pad_id = getattr(tokenizer, "pad_token_id", None)
        if pad_id is None:
            pad_id = tokenizer.eos_token_id
            logger.warning("tokenizer has no pad token: padding with EOS (%s)", pad_id)
        model_max = getattr(tokenizer, "model_max_length", None) or int(1e30)
        self.max_length = int(pad_kwargs.get("max_length", model_max))
        if self.max_length > model_max:
            raise ValueError(
                f"DataCollatorForCausalLM: max_length={self.max_length} is greater than the "
                f"tokenizer's model_max_length={model_max}"
            )
        self.tokenizer = tokenizer
        self.truncation = truncation
        self.ignore_index = ignore_index
        self.input_name = input_name
        self.labels_name = labels_name
        self.packed_sequences = packed_sequences
        self.pad_kwargs = dict(pad_kwargs)
        self.pad_to_max_length = pad_kwargs.get("padding") == "max_length"
        self.eos_token_id = getattr(tokenizer, "eos_token_id", None)
        self.collator = CausalLMCollator(
            pad_token_id=int(pad_id),
            pad_to_multiple_of=pad_kwargs.get("pad_to_multiple_of"),
            max_length=self.max_length if truncation else None,
        )

    def __call__(
        self, features: Sequence[Mapping[str, Any]]
    ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], torch.Tensor]:
        examples = [self._example(f) for f in features]
        batch = self.collator(examples)
        if self.pad_to_max_length:
            batch = self._pad_to(batch, self.max_length)
        if any("labels" in f for f in features):
            batch["labels"] = self._given_labels(features, batch["labels"])
        labels = batch.pop("labels")
        if self.input_name != "input_ids":
            batch[self.input_name] = batch.pop("input_ids")
        if not self.labels_name:
            return batch, labels
        batch[self.labels_name] = labels
        return batch

    def _example(self, feature: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        ids = torch.as_tensor(feature["input_ids"], dtype=torch.int64)
        example = {"input_ids": ids}
        packed = self.packed_sequences
        starts = feature.get("document_starts")
        if starts is not None and packed is not False:
            example["position_ids"] = _positions_from_starts(len(ids), list(starts))
        elif packed and self.eos_token_id is not None:
            example["position_ids"] = _positions_after_token(ids, self.eos_token_id)
        elif "position_ids" in feature:
            example["position_ids"] = torch.as_tensor(feature["position_ids"], dtype=torch.int64)
        return example

    def _given_labels(self, features: Sequence[Mapping[str, Any]], shape_of: torch.Tensor):
        """Labels the examples carry, truncated and padded like the inputs."""
        labels = torch.full_like(shape_of, IGNORE_INDEX)
        for row, feature in enumerate(features):
            given = torch.as_tensor(feature["labels"], dtype=torch.int64)[: shape_of.shape[1]]
            labels[row, : len(given)] = given
        return labels

    def _pad_to(self, batch: dict[str, torch.Tensor], length: int) -> dict[str, torch.Tensor]:
        extra = length - batch["input_ids"].shape[1]
        if extra <= 0:
            return batch
        fill = {
            "input_ids": self.collator.pad_token_id,
            "attention_mask": 0,
            "position_ids": 0,
            "labels": IGNORE_INDEX,
        }
        return {k: torch.nn.functional.pad(v, (0, extra), value=fill[k]) for k, v in batch.items()}

    def __repr__(self) -> str:
        return (
            f"DataCollatorForCausalLM(pad_token_id={self.collator.pad_token_id}, "
            f"truncation={self.truncation}, max_length={self.max_length}, "
            f"pad_kwargs={self.pad_kwargs})"
        )
