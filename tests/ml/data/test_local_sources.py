"""Local data in every format, split options (separator, lines, the one-document
tail split) and the tokenizer trained on the user's training split."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forgather.config import ConfigEnvironment
from forgather.ml.data import (
    CsvFiles,
    DataError,
    PackedDataset,
    TrainingText,
    load_or_train_tokenizer,
    open_source,
    split_corpus,
    tokenize_source,
    train_tokenizer,
)
from forgather.project import templatelib_searchdirs

SPEAKERS = ["ROMEO", "JULIET", "NURSE", "MERCUTIO"]
WORDS = [
    "the",
    "night",
    "is",
    "sweet",
    "and",
    "the",
    "moon",
    "is",
    "fair",
    "but",
    "love",
    "is",
    "a",
    "thing",
    "of",
    "light",
]


def play(lines: int = 400, seed: int = 0) -> str:
    """A play-like script: speaker lines and verse, one long document."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(lines):
        out.append(f"{SPEAKERS[i % 4]}:\n" + " ".join(rng.choice(WORDS, 9)) + ".\n")
    return "\n".join(out)


def texts(source) -> list[str]:
    return [d.text for d in source.documents()]


def test_every_format_reads_the_same_rows(tmp_path):
    rows = ["first row", "second, with a comma", 'third "quoted"\nover two lines']
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"text": r}) + "\n" for r in rows))
    import csv

    with open(tmp_path / "d.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "text"])
        writer.writerows([[i, r] for i, r in enumerate(rows)])
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": rows}), tmp_path / "d.parquet")
    datasets.Dataset.from_dict({"text": rows}).save_to_disk(str(tmp_path / "saved"))
    for name in ("d.jsonl", "d.csv", "d.parquet", "saved"):
        assert texts(open_source(tmp_path / name)) == rows, name
    assert isinstance(open_source(tmp_path / "d.csv"), CsvFiles)


def test_csv_problems_name_file_and_line(tmp_path):
    (tmp_path / "bad.csv").write_text("id,body\n1,x\n")
    with pytest.raises(
        DataError, match=r"bad.csv:1: no column 'text' \(columns: \['id', 'body'\]\)"
    ):
        texts(open_source(tmp_path / "bad.csv"))
    assert texts(open_source(tmp_path / "bad.csv", text_field="body")) == ["x"]


def test_one_file_many_files_a_directory_separator_and_lines(tmp_path):
    (tmp_path / "dir" / "sub").mkdir(parents=True)
    (tmp_path / "dir" / "a.txt").write_text("para one\n\npara two\n")
    (tmp_path / "dir" / "sub" / "b.txt").write_text("line x\nline y\n\nline z\n")
    a, b = tmp_path / "dir" / "a.txt", tmp_path / "dir" / "sub" / "b.txt"
    assert texts(open_source(a)) == ["para one\n\npara two\n"]
    assert len(texts(open_source([a, b]))) == 2
    assert [f.name for f in open_source(tmp_path / "dir").files()] == ["a.txt", "sub/b.txt"]
    assert texts(open_source(a, separator="\n\n")) == ["para one", "para two\n"]
    assert texts(open_source(tmp_path / "dir", lines=True)) == [
        "para one",
        "para two",
        "line x",
        "line y",
        "line z",
    ]
    with pytest.raises(ValueError, match="apply to text files"):
        open_source(tmp_path / "dir", format="jsonl", lines=True)


def test_one_document_holds_out_its_last_tokens(tmp_path, small_tokenizer):
    (tmp_path / "play.txt").write_text(play())
    corpus = tokenize_source(open_source(tmp_path / "play.txt"), small_tokenizer)
    assert len(corpus) == 1
    with pytest.raises(ValueError, match="from 1 document"):
        split_corpus(corpus, 0.1, split_by="document")
    splits = split_corpus(corpus, 0.1, split_by="auto")
    train, val = splits["train"], splits["validation"]
    total = int(corpus.lengths.sum())
    assert train.num_tokens + val.num_tokens == total
    assert val.num_tokens == round(0.1 * total)
    # The validation piece is the stream's tail, token for token.
    assert np.array_equal(val.document(0), corpus.tokens[total - val.num_tokens :])
    blocks = PackedDataset(val, block_size=32)
    assert len(blocks) == val.num_tokens // 32


def test_auto_split_holds_out_documents_when_there_are_enough():
    from forgather.ml.data.split import resolve_split_by

    assert resolve_split_by("auto", 1, 0.05) == "tail"
    assert resolve_split_by("auto", 19, 0.05) == "tail"
    assert resolve_split_by("auto", 20, 0.05) == "document"
    assert resolve_split_by("file", 1, 0.05) == "file"


def test_training_text_leaves_out_exactly_the_validation_documents(tmp_path, small_tokenizer):
    lines = [json.dumps({"text": f"document number {i} " * 3}) for i in range(60)]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    source = open_source(tmp_path / "d.jsonl")
    corpus = tokenize_source(source, small_tokenizer)
    held = split_corpus(corpus, 0.1, split_by="auto", seed=3)["validation"]
    held_ordinals = set(corpus.ordinals[held.doc_ids].tolist())
    seen = {d.ordinal for d in TrainingText(source, 0.1, "auto", seed=3).documents()}
    assert len(held_ordinals) == 6
    assert seen == set(range(60)) - held_ordinals
    # One document: the text's last tenth is left out.
    (tmp_path / "one.txt").write_text("abcdefghij" * 10)
    one = list(TrainingText(open_source(tmp_path / "one.txt"), 0.1).documents())
    assert one[0].text == ("abcdefghij" * 10)[:90]


def test_tokenizer_is_trained_on_the_users_text(tmp_path):
    (tmp_path / "play.txt").write_text(play())
    source = TrainingText(open_source(tmp_path / "play.txt"), 0.05)
    tok = load_or_train_tokenizer(source, vocab_size=320)
    # Trained on the play, its speakers are single tokens; the stdlib tokenizer splits them.
    assert tok.tokenize("ROMEO") == ["ROMEO"]
    other = train_tokenizer(["def f(x):\n    return x\n" * 50], vocab_size=300)
    assert len(other.tokenize("ROMEO")) > 1


def test_text_dataset_template_takes_one_file_by_default(tmp_path):
    (tmp_path / "input.txt").write_text(play())
    env = ConfigEnvironment(searchpath=templatelib_searchdirs())
    cfg = env.load(
        "text_dataset.yaml",
        data_path=str(tmp_path / "input.txt"),
        block_size=64,
        num_proc=1,
        tokenizer_vocab_size=320,
    )
    built = cfg.build()
    tok = built["tokenizer"]
    assert tok.tokenize("JULIET") == ["JULIET"]
    assert len(built["main"]["train"]) > 0 and len(built["main"]["validation"]) > 0
    batch = built["data_collator"]([built["main"]["train"][0]])
    assert batch["input_ids"].shape == (1, 64)

    # A given tokenizer (directory) is used instead of training one.
    tok.save_pretrained(tmp_path / "tok")
    given = env.load(
        "text_dataset.yaml",
        data_path=str(tmp_path / "input.txt"),
        tokenizer_path=str(tmp_path / "tok"),
        lines=True,
        num_proc=1,
    ).build()
    assert given["tokenizer"].name_or_path == str(tmp_path / "tok")
    assert len(given["splits"]["train"]) + len(given["splits"]["validation"]) == 800
