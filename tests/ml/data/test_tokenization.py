"""Batch tokenization over processes, the on-disk cache, and what invalidates it."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from forgather.ml.data import tokenization
from forgather.ml.data.sources import TextFiles
from forgather.ml.data.tokenization import tokenize_source


def test_documents_are_framed_by_bos_and_eos(small_source, small_tokenizer):
    corpus = tokenize_source(small_source, small_tokenizer)
    docs = [d.text for d in small_source.documents()]
    assert len(corpus) == len(docs)
    for i in (0, len(docs) // 2, len(docs) - 1):
        expected = small_tokenizer(docs[i], add_special_tokens=False)["input_ids"]
        bos, eos = small_tokenizer.bos_token_id, small_tokenizer.eos_token_id
        assert corpus.document(i).tolist() == [bos, *expected, eos]
    assert corpus.tokens.dtype == np.uint16
    assert int(corpus.offsets[-1]) == len(corpus.tokens)
    assert [corpus.file_names[f] for f in corpus.file_ids[:2]] == [
        f.name for f in small_source.files()[:2]
    ]


def test_second_load_does_no_tokenization(small_source, small_tokenizer, caplog):
    caplog.set_level(logging.INFO, logger="forgather.ml.data")
    before = dict(tokenization.stats)
    first = tokenize_source(small_source, small_tokenizer)
    after_first = dict(tokenization.stats)
    second = tokenize_source(
        small_source, small_tokenizer, num_proc=3
    )  # num_proc is not in the key
    assert after_first["documents_tokenized"] - before["documents_tokenized"] == len(first)
    assert tokenization.stats["documents_tokenized"] == after_first["documents_tokenized"]
    assert (
        tokenization.stats["corpora_loaded_from_cache"] == before["corpora_loaded_from_cache"] + 1
    )
    assert (first.from_cache, second.from_cache) == (False, True)
    assert second.path == first.path
    assert np.array_equal(first.tokens, second.tokens)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith(f"tokenized {len(first)} documents")
    assert messages[1] == f"loaded cached tokens from {first.path}"


def test_cache_key_follows_files_tokenizer_and_parameters(tmp_path, small_tokenizer):
    from forgather.ml.data.tokenizer import train_tokenizer

    (tmp_path / "data").mkdir()
    doc = tmp_path / "data" / "a.txt"
    doc.write_text("def f(x):\n    return x\n")
    source = TextFiles(tmp_path / "data")
    first = tokenize_source(source, small_tokenizer)
    assert tokenize_source(TextFiles(tmp_path / "data"), small_tokenizer).from_cache

    doc.write_text("def f(x):\n    return x + 1\n")  # new size and mtime
    changed = tokenize_source(TextFiles(tmp_path / "data"), small_tokenizer)
    assert not changed.from_cache and changed.path != first.path
    assert not tokenize_source(
        TextFiles(tmp_path / "data"), small_tokenizer, add_bos=False
    ).from_cache
    other_tok = train_tokenizer(["def g(y): return y\n" * 20], vocab_size=300)
    assert not tokenize_source(TextFiles(tmp_path / "data"), other_tok).from_cache


def test_two_processes_give_the_same_tokens_as_one(
    small_source, small_tokenizer, tmp_path, monkeypatch
):
    monkeypatch.setattr(tokenization, "BATCH_CHARS", 50_000)  # several batches per worker
    one = tokenize_source(small_source, small_tokenizer, num_proc=1, cache_dir=tmp_path / "c1")
    two = tokenize_source(small_source, small_tokenizer, num_proc=2, cache_dir=tmp_path / "c2")
    assert not two.from_cache
    assert np.array_equal(one.tokens, two.tokens)
    assert np.array_equal(one.offsets, two.offsets)
    assert np.array_equal(one.file_ids, two.file_ids)


def test_special_token_spellings_in_text_stay_text(tmp_path, small_tokenizer):
    (tmp_path / "a.txt").write_text("x = '<|eos|>'\n")
    corpus = tokenize_source(
        TextFiles(tmp_path / "a.txt"), small_tokenizer, add_bos=False, add_eos=False
    )
    ids = corpus.document(0).tolist()
    assert small_tokenizer.eos_token_id not in ids
    assert small_tokenizer.decode(ids) == "x = '<|eos|>'\n"


def test_errors_propagate_and_leave_no_cache_entry(tmp_path, small_tokenizer, private_cache):
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\n")
    with pytest.raises(Exception, match=r"bad\.txt:2: not valid UTF-8"):
        tokenize_source(TextFiles(tmp_path / "bad.txt"), small_tokenizer, num_proc=2)
    entries = os.listdir(private_cache / "tokenized")
    assert all(e.endswith(".lock") for e in entries)


def test_a_source_with_no_documents_is_an_error(tmp_path, small_tokenizer):
    (tmp_path / "bad.txt").write_bytes(b"\xff")
    with pytest.raises(ValueError, match="yielded no documents"):
        tokenize_source(TextFiles(tmp_path / "bad.txt", on_error="skip"), small_tokenizer)


def test_pickling_a_cached_corpus_sends_the_path_not_the_tokens(small_source, small_tokenizer):
    import pickle

    corpus = tokenize_source(small_source, small_tokenizer)
    data = pickle.dumps(corpus)
    assert len(data) < corpus.tokens.nbytes / 4
    restored = pickle.loads(data)
    assert np.array_equal(restored.tokens, corpus.tokens)
    assert restored.document(3).tolist() == corpus.document(3).tolist()
