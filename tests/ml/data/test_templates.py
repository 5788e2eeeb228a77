"""The tokenizer and dataset templates in templatelib/, loaded and built for real
(with the stdlib corpus narrowed to a few packages to stay fast)."""

from __future__ import annotations

import pytest

from forgather.config import ConfigEnvironment, check
from forgather.ml.data import tokenization
from forgather.ml.data.packing import DocumentDataset, PackedDataset
from forgather.project import templatelib_searchdirs

from .conftest import SMALL_PACKAGES


@pytest.fixture(scope="module")
def env() -> ConfigEnvironment:
    return ConfigEnvironment(searchpath=templatelib_searchdirs())


@pytest.mark.parametrize(
    ("name", "vocab"), [("bpe_2k_tokenizer.yaml", 2048), ("bpe_8k_tokenizer.yaml", 8192)]
)
def test_tokenizer_templates_check_and_declare_their_vocabulary(env, name, vocab):
    cfg = env.load(name)
    assert check(cfg) == []
    assert cfg.build("meta")["vocab_size"] == vocab
    assert cfg.build("meta")["config_class"] == "type.tokenizer"


def test_tokenizer_template_builds_a_tokenizer(env):
    cfg = env.load("bpe_2k_tokenizer.yaml", vocab_size=300)
    cfg.set_value("main.source.packages", ["json"])
    tokenizer = cfg.build("main")
    assert len(tokenizer) == 300 and tokenizer.bos_token == "<|bos|>"
    assert "def construct(" in cfg.to_python("main")


def narrowed(cfg):
    """Train the tokenizer and read the corpus from a few stdlib packages only."""
    cfg.set_value("tokenizer.source.packages", SMALL_PACKAGES)
    cfg.set_value("tokenizer.vocab_size", 400)
    return cfg


def test_stdlib_dataset_template_builds_and_second_build_is_cached(env):
    cfg = narrowed(
        env.load("python_stdlib_dataset.yaml", stdlib_packages=SMALL_PACKAGES, block_size=128)
    )
    assert check(cfg) == []
    assert {"tokenizer", "splits", "train_dataset", "eval_dataset", "data_collator", "main"} <= set(
        cfg.targets
    )
    before = tokenization.stats["documents_tokenized"]
    built = cfg.build()
    tokenized = tokenization.stats["documents_tokenized"] - before
    assert tokenized == len(built["splits"]["train"]) + len(built["splits"]["validation"])
    train, validation = built["main"]["train"], built["main"]["validation"]
    assert isinstance(train, PackedDataset) and train.block_size == 128
    # file-level split: no file on both sides
    assert not set(train.split.file_names()) & set(validation.split.file_names())
    batch = built["data_collator"]([train[0], train[1]])
    assert batch["input_ids"].shape == (2, 128)

    again = cfg.build("main")
    assert tokenization.stats["documents_tokenized"] == before + tokenized
    assert again["train"].split.corpus.from_cache


def test_text_dataset_template_reads_local_jsonl_unpacked(env, tmp_path):
    lines = [f'{{"text": "def f{i}(x):\\n    return x * {i}\\n"}}' for i in range(40)]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    cfg = env.load(
        "text_dataset.yaml",
        data_path=str(tmp_path / "d.jsonl"),
        packed=False,
        validation_fraction=0.1,
        num_proc=1,
        tokenizer_vocab_size=300,
    )
    built = cfg.build("main")
    assert isinstance(built["train"], DocumentDataset)
    assert (len(built["train"]), len(built["validation"])) == (36, 4)


def test_definition_sub_template_can_be_included_by_another_config(env):
    text = '-- include "python_stdlib_dataset.definition"\nmain: *train_dataset\n'
    cfg = narrowed(env.load_from_string(text, stdlib_packages=["json"], block_size=64))
    assert {"tokenizer", "train_dataset", "eval_dataset", "data_collator"} <= set(cfg.targets)
    assert len(cfg.build("main")[0]["input_ids"]) == 64
