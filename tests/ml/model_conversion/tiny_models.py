"""Tiny random transformers models of every convertible architecture, saved locally.

Nothing comes from a hub: configs are built here (``LlamaConfig(...)`` etc.),
weights are random, and the tokenizer is a word-level one made from a word
list, so a model directory takes milliseconds to write.
"""

from __future__ import annotations

from pathlib import Path

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

_TEXT = "the old bookstore at corner of elm street had always held secrets but today something "
WORDS = (
    _TEXT + "unusual caught emma eye a an and is was to in on it for with as by from that"
).split()
VOCAB = 96
SIZES = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    num_hidden_layers=2,
    max_position_embeddings=64,
    bos_token_id=1,
    eos_token_id=2,
    initializer_range=0.2,  # peaked next-token distributions: greedy decoding is stable
)
LLAMA3 = {
    "rope_type": "llama3",
    "rope_theta": 500000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}
YARN = {
    "rope_type": "yarn",
    "rope_theta": 10000.0,
    "factor": 4.0,
    "original_max_position_embeddings": 16,
}
DYNAMIC = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}

#: name -> config of a tiny model with the features that architecture adds.
CONFIGS = {
    "llama_llama3_rope_gqa": lambda: LlamaConfig(**SIZES, rope_parameters=LLAMA3),
    "llama_yarn_tied": lambda: LlamaConfig(**SIZES, rope_parameters=YARN, tie_word_embeddings=True),
    "llama_dynamic_rope": lambda: LlamaConfig(
        **{**SIZES, "max_position_embeddings": 16}, rope_parameters=DYNAMIC
    ),
    "mistral_sliding_window": lambda: MistralConfig(**SIZES, sliding_window=4),
    "qwen2_qkv_bias_tied": lambda: Qwen2Config(**SIZES, tie_word_embeddings=True),
    "qwen3_qk_norm": lambda: Qwen3Config(**SIZES),
    "gpt2": lambda: GPT2Config(
        vocab_size=VOCAB,
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=64,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=0.2,
    ),  # fmt: skip
}


def tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over :data:`WORDS` with <unk>, <s> and </s> (ids 0, 1, 2)."""
    vocab = {token: i for i, token in enumerate(["<unk>", "<s>", "</s>", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


def save_tiny(name: str, directory: Path, with_tokenizer: bool = True) -> Path:
    """Write the tiny model ``name`` (a key of :data:`CONFIGS`) to ``directory``."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(CONFIGS[name]())
    model.save_pretrained(directory)
    if with_tokenizer:
        tokenizer().save_pretrained(directory)
    return directory
