"""Deterministic train/validation splits."""

from __future__ import annotations

import numpy as np
import pytest

from forgather.ml.data.split import split_corpus
from forgather.ml.data.tokenization import TokenizedCorpus, tokenize_source


def fake_corpus(file_names: list[str], docs_per_file: int = 1) -> TokenizedCorpus:
    """A corpus of 3-token documents: the split only looks at names and ordinals."""
    n = len(file_names) * docs_per_file
    return TokenizedCorpus(
        tokens=np.arange(3 * n, dtype=np.uint16),
        offsets=np.arange(0, 3 * n + 1, 3, dtype=np.int64),
        file_ids=np.repeat(np.arange(len(file_names), dtype=np.int32), docs_per_file),
        ordinals=np.tile(np.arange(docs_per_file, dtype=np.int64), len(file_names)),
        file_names=file_names,
    )


def test_file_split_is_deterministic_exact_and_whole_files(small_source, small_tokenizer):
    corpus = tokenize_source(small_source, small_tokenizer)
    a = split_corpus(corpus, validation_fraction=0.2, split_by="file")
    b = split_corpus(corpus, validation_fraction=0.2, split_by="file")
    assert np.array_equal(a["validation"].doc_ids, b["validation"].doc_ids)
    n_files = len(corpus.file_names)
    assert len(a["validation"].file_names()) == round(0.2 * n_files)
    assert not set(a["train"].file_names()) & set(a["validation"].file_names())
    assert len(a["train"]) + len(a["validation"]) == len(corpus)
    other_seed = split_corpus(corpus, validation_fraction=0.2, split_by="file", seed=1)
    assert not np.array_equal(other_seed["validation"].doc_ids, a["validation"].doc_ids)


def test_membership_depends_on_names_not_positions():
    names = [f"pkg/m{i}.py" for i in range(40)]
    held_out = set(split_corpus(fake_corpus(names), 0.25)["validation"].file_names())
    reordered = list(reversed(names))
    assert set(split_corpus(fake_corpus(reordered), 0.25)["validation"].file_names()) == held_out
    # Adding files moves only units near the cut: most held-out files stay held out.
    grown = set(
        split_corpus(fake_corpus(names + [f"new{i}.py" for i in range(4)]), 0.25)[
            "validation"
        ].file_names()
    )
    assert len(held_out & grown) >= len(held_out) - 2


def test_document_split_cuts_inside_files():
    corpus = fake_corpus(["a.jsonl", "b.jsonl"], docs_per_file=50)
    splits = split_corpus(corpus, validation_fraction=0.1, split_by="document")
    assert len(splits["validation"]) == 10
    assert set(splits["validation"].file_names()) == {"a.jsonl", "b.jsonl"}
    assert np.all(np.diff(splits["train"].doc_ids) > 0)  # corpus order kept


def test_small_fractions_hold_out_one_unit_and_zero_holds_out_none():
    corpus = fake_corpus(["a", "b", "c"])
    assert len(split_corpus(corpus, 0.01)["validation"]) == 1
    assert len(split_corpus(corpus, 0.0)["validation"]) == 0
    assert len(split_corpus(corpus, 0.99)["train"]) == 1


def test_split_errors():
    with pytest.raises(ValueError, match="from 1 file"):
        split_corpus(fake_corpus(["only.txt"], docs_per_file=5), 0.1, split_by="file")
    with pytest.raises(ValueError, match=r"validation_fraction must be in \[0, 1\)"):
        split_corpus(fake_corpus(["a", "b"]), 1.0)
    with pytest.raises(ValueError, match="split_by must be"):
        split_corpus(fake_corpus(["a", "b"]), 0.5, split_by="line")
