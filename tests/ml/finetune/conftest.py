"""Fixtures for the fine-tuning tests: tiny random Hugging Face models of every
supported architecture, written locally with ``save_pretrained`` (nothing from a
hub), a word-level tokenizer over the shipped chat data's words, and that data.

(Test packages are not importable from each other: the model-conversion tests
have a similar helper.)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen3Config,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).parents[3]
CHAT = ROOT / "examples" / "data" / "chat" / "conversations.jsonl"


def chat_words() -> list[str]:
    """Every word and punctuation mark of the shipped conversations, in first-seen order."""
    words: dict[str, None] = {}
    for line in CHAT.read_text().splitlines():
        for message in json.loads(line)["messages"]:
            words.update(dict.fromkeys(re.findall(r"\w+|[^\w\s]", message["content"])))
    return list(words)


def tokenizer() -> PreTrainedTokenizerFast:
    """Word-level: <unk>, <s>, </s>, <pad>, then the chat words (the template's markers are <unk>).

    It names a pad token: without one, transformers gives a Qwen2 directory's
    tokenizer a new `<|endoftext|>` pad beyond the model's vocabulary.
    """
    vocab = {t: i for i, t in enumerate(["<unk>", "<s>", "</s>", "<pad>", *chat_words()])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>",
    )  # fmt: skip


SIZES = dict(
    hidden_size=32,
    intermediate_size=64,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=8,
    num_hidden_layers=2,
    max_position_embeddings=128,
    bos_token_id=1,
    eos_token_id=2,
)
#: name -> config of a tiny model (vocab size filled in from the tokenizer).
CONFIGS = {
    "llama": lambda v: LlamaConfig(vocab_size=v, **SIZES),
    "mistral": lambda v: MistralConfig(vocab_size=v, sliding_window=16, **SIZES),
    "qwen2": lambda v: Qwen2Config(vocab_size=v, tie_word_embeddings=True, **SIZES),
    "qwen3": lambda v: Qwen3Config(vocab_size=v, **SIZES),
    "gpt2": lambda v: GPT2Config(
        vocab_size=v,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=128,
        bos_token_id=1,
        eos_token_id=2,
    ),
}


def save_tiny(name: str, directory: Path) -> Path:
    """Write the tiny model ``name`` (a key of :data:`CONFIGS`) and its tokenizer."""
    tok = tokenizer()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIGS[name](len(tok)))
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Every architecture's tiny model directory (written once per session)."""
    root = tmp_path_factory.mktemp("tiny_models")
    return {name: save_tiny(name, root / name) for name in CONFIGS}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty data cache (never the user's)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FORGATHER_CACHE_DIR", str(cache))
    return cache
