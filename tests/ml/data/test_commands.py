"""The plain function behind the CLI's train-a-tokenizer command."""

from __future__ import annotations

import pytest

from forgather.ml.data.commands import train_tokenizer_command
from forgather.ml.data.sources import DataError
from forgather.ml.data.stdlib_corpus import stdlib_dir
from forgather.ml.data.tokenizer import load_tokenizer


def test_trains_on_local_files_and_saves_a_loadable_tokenizer(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("textwrap.py", "bisect.py", "string.py"):
        (data / f"{name}.txt").write_text((stdlib_dir() / name).read_text())
    report = train_tokenizer_command(
        [str(data)], tmp_path / "tok", vocab_size=400, chat_template="simple"
    )
    assert report.splitlines()[0] == f"saved tokenizer to {tmp_path / 'tok'}"
    assert "vocabulary: 400 tokens" in report and "round trip exact" in report
    tok = load_tokenizer(tmp_path / "tok")
    assert len(tok) == 400 and tok.chat_template is not None


def test_jsonl_input_and_missing_input(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "def f():\\n    pass\\n"}\n' * 30)
    report = train_tokenizer_command([str(tmp_path / "d.jsonl")], tmp_path / "tok", vocab_size=300)
    assert "trained on 30 documents" in report
    with pytest.raises(DataError, match="no such file or directory"):
        train_tokenizer_command([str(tmp_path / "missing.txt")], tmp_path / "tok2")
