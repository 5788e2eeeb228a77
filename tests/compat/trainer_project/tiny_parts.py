"""A tiny causal LM, tokenizer and datasets for the original-name trainer tests.

The model follows the conventions the original Forgather's trainers rely on:
Hugging Face style `forward(input_ids, ..., labels=None)` returning `logits`
(and `loss` given labels), `get_output_embeddings()`, and
`return_hidden_states=True` (`can_return_hidden_states`) for the fused loss.
"""

from __future__ import annotations

import textwrap

from torch import nn


class TinyCausalLM(nn.Module):
    """Embedding -> GRU -> linear head."""

    can_return_hidden_states = True

    def __init__(self, vocab_size: int = 320, dim: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def forward(
        self, input_ids, attention_mask=None, position_ids=None, labels=None,
        return_hidden_states=False,
    ):  # fmt: skip
        hidden, _ = self.rnn(self.embed(input_ids))  # (B, T, dim)
        if return_hidden_states:
            return hidden
        logits = self.lm_head(hidden)  # (B, T, V)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
            )
        return out


def make_tokenizer():
    """A byte-level BPE of about 300 tokens trained on textwrap's source."""
    from forgather.ml.data.tokenizer import train_tokenizer

    with open(textwrap.__file__) as f:
        text = f.read()
    return train_tokenizer([text], vocab_size=300, model_max_length=64)


def make_dataset(tokenizer, start: int = 0, count: int = 64) -> list[dict]:
    """`count` non-empty lines of textwrap's source, tokenized (lists of ids, unpadded)."""
    with open(textwrap.__file__) as f:
        lines = [line for line in f.read().splitlines() if len(line.strip()) > 8]
    return [
        {"input_ids": tokenizer(line)["input_ids"][:48]} for line in lines[start : start + count]
    ]


def build_model(vocab_size: int = 320) -> TinyCausalLM:
    """The model (seeded by whoever calls it: the trainers seed before `model_init`)."""
    return TinyCausalLM(vocab_size)


def length(tokenizer) -> int:
    return len(tokenizer)
