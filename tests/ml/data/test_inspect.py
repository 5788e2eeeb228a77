"""The `dataset` command's report: sizes, decoded examples, length statistics, SVG."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from forgather.ml.data.histogram import length_summary, log2_bins, write_histogram_svg
from forgather.ml.data.inspect import dataset_report, format_examples, unigram_entropy
from forgather.ml.data.packing import DocumentDataset, PackedDataset
from forgather.ml.data.split import split_corpus
from forgather.ml.data.tokenization import tokenize_source

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def splits(small_source, small_tokenizer):
    return split_corpus(tokenize_source(small_source, small_tokenizer), 0.2)


def test_summary_and_bins_of_known_lengths():
    summary = length_summary(np.array([1, 2, 3, 4, 100]))
    assert summary == {
        "count": 5,
        "total": 110,
        "mean": 22.0,
        "min": 1,
        "p50": 3.0,
        "p90": pytest.approx(61.6),
        "p99": pytest.approx(96.16),
        "max": 100,
    }
    edges, counts = log2_bins(np.array([1, 2, 3, 4, 100]))
    assert edges.tolist() == [1, 2, 4, 8, 16, 32, 64]
    assert counts.tolist() == [1, 2, 1, 0, 0, 0, 1]


def test_histogram_svg_is_well_formed_with_one_bar_per_bin(tmp_path):
    path = write_histogram_svg(
        np.array([1, 2, 3, 4, 100]), tmp_path / "h" / "x.svg", title="a <b> & c"
    )
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 7
    assert [b.find(f"{SVG}title").text for b in bars][:2] == ["1-1: 1", "2-3: 2"]
    heights = [float(b.get("height")) for b in bars]
    assert heights[1] == max(heights) and heights[3] == 0
    assert any(t.text == "a <b> & c" for t in root.iter(f"{SVG}text"))


def test_unigram_entropy_matches_a_direct_count(splits):
    split = splits["validation"]
    tokens = np.concatenate([split.document(i) for i in range(len(split))])
    counts = np.bincount(tokens)
    p = counts[counts > 0] / len(tokens)
    assert unigram_entropy(split) == pytest.approx(float(-(p * np.log(p)).sum()))
    assert 0 < unigram_entropy(split) < math.log(512)


def test_packed_examples_mark_document_boundaries(splits, small_tokenizer):
    train = PackedDataset(splits["train"], block_size=128, shuffle_seed=None)
    text = format_examples(train, small_tokenizer, num_examples=40, max_chars=10_000)
    assert text.startswith("=== example 0: block of 128 tokens ===\n---- document starts: ")
    assert "---- document continues: " in text
    first = splits["train"].file_names()[0]
    assert re.match(
        rf"=== [^\n]*\n---- document starts: {re.escape(first)} \[tokens 0:\d+ of \d+\] ----", text
    )
    raw = format_examples(train, small_tokenizer, num_examples=1, packed=False, max_chars=50)
    assert raw.startswith(f"=== document 0: {first} (")
    assert "more chars]" in raw


def test_report_lists_splits_and_writes_one_histogram_per_split(splits, small_tokenizer, tmp_path):
    datasets = {
        "train": PackedDataset(splits["train"], block_size=64),
        "validation": DocumentDataset(splits["validation"], max_length=64),
    }
    report = dataset_report(datasets, small_tokenizer, num_examples=1, histogram_dir=tmp_path)
    lines = report.splitlines()
    assert lines[0] == "# Splits"
    train_row = next(line for line in lines if line.startswith("train "))
    assert f"{len(splits['train']):,}" in train_row and "PackedDataset (block_size=64)" in train_row
    assert f"{splits['train'].num_tokens:,}" in train_row
    assert any(
        line.startswith("validation ") and "DocumentDataset (max_length=64)" in line
        for line in lines
    )
    assert "# Examples from train" in report
    assert f"validation: count={len(splits['validation'])} " in report
    assert sorted(p.name for p in tmp_path.glob("*.svg")) == [
        "train_token_lengths.svg",
        "validation_token_lengths.svg",
    ]
