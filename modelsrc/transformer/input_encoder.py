"""Token input encoder: embedding lookup, optional scaling and absolute positions.

Decision a reader may question: ``forward`` accepts either token ids or token
embeddings as its first argument. Hugging Face's ``inputs_embeds`` means
"token embeddings, before positions", so those still get scaled and
positioned; and when vLLM splits a model across pipeline stages it replaces
this module with an identity that returns its first argument, so later stages
pass hidden states straight through.
"""

import math

import torch
from torch import nn


class InputEncoder(nn.Module):
    """Maps token ids to the first hidden states.

    ``hidden = dropout(embed_tokens(ids) * scale + positional_encoder(position_ids))``

    Args:
        vocab_size: Number of token ids.
        hidden_size: Embedding width.
        positional_encoder: Absolute position encoder (learned, sinusoidal) or
            ``None`` when positions are relative (RoPE, ALiBi) or absent.
        scale_embeddings: Multiply embeddings by ``sqrt(hidden_size)`` (the
            original Transformer; useful with sinusoidal positions).
        dropout: Dropout probability on the result.
        padding_idx: Passed to ``nn.Embedding``.
    """

    def __init__(
        self,
        vocab_size: int,
        hidden_size: int,
        positional_encoder: nn.Module | None = None,
        scale_embeddings: bool = False,
        dropout: float = 0.0,
        padding_idx: int | None = None,
    ) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, hidden_size, padding_idx=padding_idx)
        self.positional_encoder = positional_encoder
        self.scale = math.sqrt(hidden_size) if scale_embeddings else 1.0
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """Encode ``tokens``: ids (B, T) or embeddings (B, T, D); returns (B, T, D)."""
        x = tokens if tokens.is_floating_point() else self.embed_tokens(tokens)
        if self.scale != 1.0:
            x = x * self.scale
        if self.positional_encoder is not None:
            x = x + self.positional_encoder(position_ids).to(x.dtype)
        return self.dropout(x)

    def extra_repr(self) -> str:
        return f"scale={self.scale:.4g}"
