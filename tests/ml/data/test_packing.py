"""Packing documents into blocks with restarting positions, and per-document examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from forgather.ml.data.packing import DocumentDataset, PackedDataset
from forgather.ml.data.split import CorpusSplit
from forgather.ml.data.tokenization import TokenizedCorpus


def make_split(lengths: list[int]) -> CorpusSplit:
    """Document i holds tokens 1000*i + 0, 1, 2, ... so every token says where it is from."""
    tokens = np.concatenate([1000 * i + np.arange(n) for i, n in enumerate(lengths)]).astype(
        np.uint32
    )
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    corpus = TokenizedCorpus(
        tokens=tokens,
        offsets=offsets,
        file_ids=np.arange(len(lengths), dtype=np.int32),
        ordinals=np.zeros(len(lengths), dtype=np.int64),
        file_names=[f"f{i}" for i in range(len(lengths))],
    )
    return CorpusSplit(corpus, np.arange(len(lengths), dtype=np.int64), "train")


def test_blocks_cover_the_stream_and_positions_restart_at_each_document():
    split = make_split([5, 3, 9, 2])  # 19 tokens
    ds = PackedDataset(split, block_size=4, shuffle_seed=None)
    assert len(ds) == 4  # 16 tokens; the last 3 are dropped
    ids = torch.cat([ds[i]["input_ids"] for i in range(len(ds))])
    assert ids.tolist() == split.corpus.tokens[:16].tolist()
    for i in range(len(ds)):
        item = ds[i]
        assert item["input_ids"].dtype == torch.int64 and item["input_ids"].shape == (4,)
        doc = (item["input_ids"] // 1000).tolist()
        # 0 at the block start and wherever the document changes, else counting up
        expected = [0]
        for t in range(1, 4):
            expected.append(0 if doc[t] != doc[t - 1] else expected[-1] + 1)
        assert item["position_ids"].tolist() == expected
    assert ds[1]["position_ids"].tolist() == [0, 0, 1, 2]  # doc 0 continues, doc 1 starts
    assert ds.segments(1) == [(0, 4, 5), (1, 0, 3)]


def test_no_token_is_lost_or_duplicated_with_shuffled_documents():
    split = make_split([7, 1, 12, 30, 4, 9])
    ds = PackedDataset(split, block_size=8, shuffle_seed=3, drop_last=False)
    assert len(ds) == -(-63 // 8)
    assert len(ds[len(ds) - 1]["input_ids"]) == 63 % 8
    all_ids = torch.cat([ds[i]["input_ids"] for i in range(len(ds))]).tolist()
    assert sorted(all_ids) == sorted(split.corpus.tokens.tolist())
    assert all_ids != split.corpus.tokens.tolist()  # order changed by the seed
    again = PackedDataset(split, block_size=8, shuffle_seed=3, drop_last=False)
    assert torch.equal(again[2]["input_ids"], ds[2]["input_ids"])


def test_packed_dataset_rejects_bad_index_and_block_size():
    ds = PackedDataset(make_split([10]), block_size=4)
    with pytest.raises(IndexError):
        ds[2]
    with pytest.raises(ValueError):
        PackedDataset(make_split([10]), block_size=1)


def test_document_dataset_cuts_long_documents_into_pieces():
    split = make_split([5, 12, 1])
    ds = DocumentDataset(split, max_length=5)
    pieces = [ds[i]["input_ids"].tolist() for i in range(len(ds))]
    assert pieces == [
        [0, 1, 2, 3, 4],
        [1000, 1001, 1002, 1003, 1004],
        [1005, 1006, 1007, 1008, 1009],
        [1010, 1011],
        [2000],
    ]
    assert ds[3]["position_ids"].tolist() == [0, 1]
