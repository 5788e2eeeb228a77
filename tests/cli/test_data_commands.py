"""``forgather dataset`` and ``forgather tokenizer`` on real (small) data, in a subprocess."""

import json
import textwrap
from pathlib import Path

from tests.cli.conftest import EXAMPLES, TEMPLATE_PROJECT, run_cli


def test_dataset_report_on_a_stdlib_subset(tmp_path):
    result = run_cli(
        "-p",
        str(TEMPLATE_PROJECT),
        "-t",
        "python_stdlib_dataset.yaml",
        "-D",
        "stdlib_packages=[json]",
        "-D",
        "tokenizer_vocab_size=512",
        "dataset",
        "-n",
        "1",
        "--histogram-dir",
        str(tmp_path),
    )
    assert result.rc == 0, result.err
    assert "# Splits" in result.out and "# Token lengths per document" in result.out
    assert "unigram entropy:" in result.out
    svgs = sorted(p.name for p in tmp_path.glob("*.svg"))
    assert "train_token_lengths.svg" in svgs


def test_tokenizer_command_trains_and_saves(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": f"line {i} of some text"}) for i in range(200)))
    out = tmp_path / "tok"
    result = run_cli("tokenizer", str(corpus), "-O", str(out), "--vocab-size", "300")
    assert result.rc == 0, result.err
    assert (out / "tokenizer.json").is_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{not json\n')
    failed = run_cli("tokenizer", str(bad), "-O", str(tmp_path / "t2"))
    assert failed.rc == 1 and "bad.jsonl:2" in failed.err


def test_tokenizer_command_on_one_long_text_file_warns_about_nothing(tmp_path):
    """Its report encodes the whole first document; transformers' "Token indices sequence
    length is longer than the specified maximum" about that alarmed users for nothing."""
    corpus = tmp_path / "book.txt"
    corpus.write_text(Path(textwrap.__file__).read_text() * 2)  # one document
    result = run_cli("tokenizer", str(corpus), "-O", str(tmp_path / "tok"), "--vocab-size", "300")
    assert result.rc == 0, result.err
    assert "longer than the specified maximum" not in result.out + result.err
    assert "round trip exact" in result.out


def test_dataset_without_a_tokenizer_shows_the_raw_examples(tmp_path):
    # The original's dataset projects leave `tokenizer` to the project that trains on the data.
    config = tmp_path / "raw.yaml"
    config.write_text(
        "tokenizer: !var tokenizer\n"
        "train_dataset_split: !call:datasets:Dataset.from_dict\n"
        "    - {text: ['first document', 'second one']}\n"
    )
    project = ["-p", str(TEMPLATE_PROJECT), "-t", str(config)]
    result = run_cli(*project, "dataset", "--target", "train_dataset_split", "-n", "1")
    assert result.rc == 0, result.err
    assert "[text]\nfirst document\n" in result.out
    assert (
        "train_dataset_split: not tokenized (give a tokenizer, -T PATH, for lengths)" in result.out
    )


def test_dataset_defaults_to_train_dataset_split_as_the_original_did(tmp_path):
    """Without --target, a config with the original's default target shows that split: its
    ``main`` needs a ``tokenizer`` only the training project gives. ``--target main`` still
    builds main."""
    config = tmp_path / "original_style.yaml"
    config.write_text(
        "tokenizer: &tokenizer !var tokenizer\n"
        "train_dataset_split: &split !call:datasets:Dataset.from_dict\n"
        "    - {text: ['first document', 'second one']}\n"
        "main: !dict\n"
        "    train: *split\n"
        "    needs: *tokenizer\n"
    )
    project = ["-p", str(TEMPLATE_PROJECT), "-t", str(config)]
    result = run_cli(*project, "dataset", "-n", "1")
    assert result.rc == 0, result.err
    assert "# Examples from train_dataset_split" in result.out
    assert "[text]\nfirst document\n" in result.out
    explicit = run_cli(*project, "dataset", "--target", "main", "-n", "1")
    assert explicit.rc == 1 and "no value for !var 'tokenizer'" in explicit.err


def test_dataset_refuses_a_target_that_is_not_data_and_a_missing_tokenizer(tmp_path):
    tiny_llama = TEMPLATE_PROJECT.parent / "tutorials" / "tiny_llama"
    not_data = run_cli("-p", str(tiny_llama), "dataset", "--target", "tokenizer")
    assert not_data.rc == 1
    assert "--target tokenizer builds a " in not_data.err and ", not a dataset" in not_data.err
    missing = run_cli("-p", str(tiny_llama), "dataset", "-T", str(tmp_path / "nowhere"))
    assert missing.rc == 1
    assert f"-T {tmp_path / 'nowhere'}: no tokenizer directory there" in missing.err


def test_dataset_on_a_training_config_suggests_its_dataset_targets(tmp_path):
    """`dataset` builds main, which a training config makes a TrainingScript: the message
    names the dataset targets to use instead and --blocks, and the suggestion works."""
    text = tmp_path / "input.txt"
    words = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "dog", "ran", "far", "away"]
    text.write_text(
        "\n\n".join(" ".join(words[(i * 7 + j) % len(words)] for j in range(60)) for i in range(40))
    )
    project = ["-p", str(EXAMPLES / "data" / "train_text"), "-D", f"data_path={text}"]
    result = run_cli(*project, "dataset")
    assert result.rc == 1
    assert result.err.startswith(
        "forgather: error: --target main builds a TrainingScript, not a dataset; try --target "
        "train_dataset or --target eval_dataset, or --blocks (train_dataset as the trainer "
        "collates it) (the config's targets: "
    )
    suggested = run_cli(*project, "dataset", "--target", "train_dataset", "-n", "1")
    assert suggested.rc == 0, suggested.err
    assert "# Examples from train_dataset" in suggested.out
