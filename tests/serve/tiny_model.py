"""A tiny real Llama and a real byte-level BPE tokenizer, saved as a model directory.

Used by the serving tests and ``benchmarks/serve_throughput.py``. The
tokenizer is trained with the ``tokenizers`` library on a few stdlib source
files; the model is a randomly initialised ``LlamaForCausalLM`` (its outputs
are gibberish, but deterministic, which is all the serving checks need).
"""

from __future__ import annotations

import os
import sysconfig

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

STDLIB_FILES = ("textwrap.py", "string.py", "glob.py", "fnmatch.py", "bisect.py")
EOS, PAD = "<|eos|>", "<|pad|>"
# Each message ends with EOS, so a chat model's answer ends where a message would.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}" + EOS + "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def train_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE with EOS and padding tokens and a chat template."""
    stdlib = sysconfig.get_paths()["stdlib"]
    files = [os.path.join(stdlib, name) for name in STDLIB_FILES]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train(files, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, pad_token=PAD)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_llama(
    out_dir: str,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 2,
    ffn: int = 128,
    vocab: int = 512,
    context: int = 4096,
    seed: int = 0,
) -> str:
    """Write a random-init Llama and its tokenizer to ``out_dir``; return ``out_dir``.

    The weights are drawn with a larger spread than Llama's default (0.02) so
    the next-token distribution is peaked: with near-uniform logits, float
    rounding differences between batch shapes could flip a greedy argmax.
    """
    tokenizer = train_tokenizer(vocab)
    tokenizer.save_pretrained(out_dir)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=ffn,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=context,
        initializer_range=0.2,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(out_dir)
    return out_dir
