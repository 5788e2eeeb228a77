"""Reading local data, and the errors (or logged skips) for malformed inputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from forgather.ml.data.sources import (
    DataError,
    JsonlFiles,
    ParquetFiles,
    SavedDataset,
    TextFiles,
    expand_paths,
    open_source,
)


def texts(source) -> list[str]:
    return [d.text for d in source.documents()]


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_directory_files_are_sorted_and_named_relative(tmp_path):
    for name in ["b.txt", "a/z.txt", "a/y.txt", "skip.md"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    files = expand_paths(tmp_path, "**/*.txt")
    assert [f.name for f in files] == ["a/y.txt", "a/z.txt", "b.txt"]
    assert [f.name for f in expand_paths(tmp_path, "**/*.txt", exclude=["a/**"])] == ["b.txt"]
    assert [f.name for f in expand_paths(tmp_path, "*.txt")] == ["b.txt"]


def test_text_files_one_document_each_or_split_by_separator(tmp_path):
    (tmp_path / "one.txt").write_text("first doc\n\n\nsecond doc\n")
    (tmp_path / "two.txt").write_text("third\n")
    assert texts(TextFiles(tmp_path)) == ["first doc\n\n\nsecond doc\n", "third\n"]
    docs = list(TextFiles(tmp_path, separator="\n\n\n").documents())
    assert [(d.file_index, d.ordinal, d.text) for d in docs] == [
        (0, 0, "first doc"),
        (0, 1, "second doc\n"),
        (1, 0, "third\n"),
    ]


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(DataError, match=r"nope\.txt: no such file or directory"):
        TextFiles(missing).files()
    with pytest.raises(DataError, match=r"nope\.txt: no such file or directory"):
        open_source(missing)


def test_empty_file_named_directly_is_an_error_or_a_logged_skip(tmp_path, caplog):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    good = tmp_path / "good.txt"
    good.write_text("hello\n")
    with pytest.raises(DataError, match=r"empty\.txt: file is empty"):
        texts(TextFiles([empty, good]))
    with caplog.at_level(logging.WARNING, logger="forgather.ml.data"):
        assert texts(TextFiles([empty, good], on_error="skip")) == ["hello\n"]
    assert [r.getMessage() for r in caplog.records] == [f"skipped: {empty}: file is empty"]


def test_empty_files_found_in_a_directory_are_skipped_silently(tmp_path, caplog):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.txt").write_text("")
    (tmp_path / "pkg" / "mod.txt").write_text("code\n")
    with caplog.at_level(logging.WARNING):
        assert texts(TextFiles(tmp_path)) == ["code\n"]
    assert caplog.records == []


def test_non_utf8_bytes_report_line_and_column(tmp_path, caplog):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("line one\nline two\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        texts(TextFiles(bad))
    assert str(err.value) == f"{bad}:3: not valid UTF-8 (byte 0xe9 at column 4)"
    assert (err.value.path, err.value.line) == (str(bad), 3)
    with caplog.at_level(logging.WARNING, logger="forgather.ml.data"):
        assert texts(TextFiles(bad, on_error="skip")) == []
    assert f"{bad}:3: not valid UTF-8" in caplog.text


def test_jsonl_reads_the_text_field_and_ignores_blank_lines(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ['{"text": "a", "id": 1}', "", '{"text": "b"}'])
    docs = list(JsonlFiles(path).documents())
    assert [(d.ordinal, d.text) for d in docs] == [(0, "a"), (1, "b")]
    other = write_jsonl(tmp_path / "e.jsonl", ['{"body": "x"}'])
    assert texts(JsonlFiles(other, text_field="body")) == ["x"]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"text": "unterminated}', "invalid JSON: Unterminated string starting at (column 10)"),
        ('["a list"]', "expected a JSON object, got list"),
        ('{"title": "x"}', "no field 'text' (fields: ['title'])"),
        ('{"text": 42}', "field 'text' is int, not a string"),
    ],
)
def test_bad_jsonl_line_names_file_and_line(tmp_path, line, problem):
    path = write_jsonl(tmp_path / "d.jsonl", ['{"text": "ok"}', '{"text": "ok"}', line])
    with pytest.raises(DataError) as err:
        texts(JsonlFiles(path))
    assert str(err.value) == f"{path}:3: {problem}"


def test_bad_jsonl_lines_skipped_with_warnings_when_asked(tmp_path, caplog):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "ok"}\nnot json\n{"text": "caf\xe9"}\n{"text": "end"}\n')
    with caplog.at_level(logging.WARNING, logger="forgather.ml.data"):
        assert texts(JsonlFiles(path, on_error="skip")) == ["ok", "end"]
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith(f"skipped: {path}:2: invalid JSON")
    assert messages[1] == f"skipped: {path}:3: not valid UTF-8 (byte 0xe9 at column 14)"


def test_empty_jsonl_file_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [""])
    with pytest.raises(DataError, match=r"d\.jsonl: file has no documents"):
        texts(JsonlFiles(path))


def test_parquet_rows_are_documents(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["alpha", "", "gamma"], "n": [1, 2, 3]}), path)
    docs = list(ParquetFiles(path).documents())
    assert [(d.ordinal, d.text) for d in docs] == [(0, "alpha"), (2, "gamma")]
    with pytest.raises(DataError, match=r"d\.parquet: no column 'body'"):
        texts(ParquetFiles(path, text_field="body"))
    bogus = tmp_path / "bogus.parquet"
    bogus.write_text("not parquet")
    with pytest.raises(DataError, match=r"bogus\.parquet: not a Parquet file"):
        texts(ParquetFiles(bogus))


def test_saved_dataset_and_dataset_dict(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"text": ["one", "two", "three"]})
    ds.save_to_disk(str(tmp_path / "ds"))
    assert texts(SavedDataset(tmp_path / "ds")) == ["one", "two", "three"]
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    assert texts(SavedDataset(tmp_path / "dd", split="test")) == ["one"]
    with pytest.raises(DataError, match=r"holds splits \['train', 'test'\]"):
        texts(SavedDataset(tmp_path / "dd"))


def test_open_source_guesses_the_format(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [json.dumps({"text": "j"})])
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "x.txt").write_text("t")
    assert isinstance(open_source(tmp_path / "a.jsonl"), JsonlFiles)
    assert isinstance(open_source(tmp_path / "t"), TextFiles)
    assert texts(open_source([tmp_path / "a.jsonl"])) == ["j"]
    with pytest.raises(ValueError, match="unknown data format 'xml'"):
        open_source(tmp_path / "a.jsonl", format="xml")


def test_glob_semantics():
    import doctest

    from forgather.ml.data import sources

    assert doctest.testmod(sources).failed == 0
    assert sources.glob_match("x.py", "**/*.py")
    assert not sources.glob_match("a/x.py", "?.py")
    assert sources.glob_match("a/b/c/d.txt", "a/**/d.txt")
