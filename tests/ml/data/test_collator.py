"""Causal-LM batches: padding, masks and labels."""

from __future__ import annotations

import torch

from forgather.ml.data.collator import IGNORE_INDEX, CausalLMCollator


def test_padding_masks_and_labels():
    collate = CausalLMCollator(pad_token_id=2)
    batch = collate(
        [
            {"input_ids": torch.tensor([10, 11, 12]), "position_ids": torch.tensor([0, 1, 2])},
            {"input_ids": [20, 21]},
        ]
    )
    assert batch["input_ids"].tolist() == [[10, 11, 12], [20, 21, 2]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["position_ids"].tolist() == [[0, 1, 2], [0, 1, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 11, 12], [IGNORE_INDEX, 21, IGNORE_INDEX]]
    assert all(t.dtype == torch.int64 for t in batch.values())


def test_document_starts_inside_a_packed_block_are_not_targets():
    collate = CausalLMCollator(pad_token_id=0)
    batch = collate(
        [
            {
                "input_ids": torch.tensor([5, 6, 7, 8, 9]),
                "position_ids": torch.tensor([3, 4, 0, 1, 0]),
            }
        ]
    )
    assert batch["labels"].tolist() == [[5, 6, IGNORE_INDEX, 8, IGNORE_INDEX]]
    keep = CausalLMCollator(pad_token_id=0, mask_document_starts=False)
    assert keep([{"input_ids": [5, 6], "position_ids": [1, 0]}])["labels"].tolist() == [[5, 6]]


def test_pad_to_multiple_and_truncate():
    collate = CausalLMCollator(pad_token_id=1, pad_to_multiple_of=4, max_length=5)
    batch = collate([{"input_ids": list(range(10, 17))}, {"input_ids": [3]}])
    assert batch["input_ids"].shape == (2, 8)
    assert batch["input_ids"][0].tolist() == [10, 11, 12, 13, 14, 1, 1, 1]
    assert batch["attention_mask"].sum().item() == 6
