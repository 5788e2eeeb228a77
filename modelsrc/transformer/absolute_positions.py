"""Absolute position encoders added to token embeddings: learned and sinusoidal.

Both take ``position_ids`` rather than a sequence length, so padded,
packed (positions restart at 0 per document) and cached (positions continue
past the prompt) inputs all get the right encoding.

Decision a reader may question: the sinusoidal table is computed from
``position_ids`` on every call instead of being stored as a buffer. It costs a
few element-wise ops, and it means nothing has to be re-created after a model
is built on the ``meta`` device and loaded from a checkpoint.
"""

import math

import torch
from torch import nn


class LearnedPositionalEncoding(nn.Module):
    """A learned embedding per position (GPT-2's ``wpe``).

    Args:
        max_position_embeddings: Number of positions that have an embedding.
        hidden_size: Embedding width.
    """

    def __init__(self, max_position_embeddings: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_position_embeddings, hidden_size)

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        # (B or 1, T) -> (B or 1, T, D)
        return self.embedding(position_ids)


class SinusoidalPositionalEncoding(nn.Module):
    """The fixed sine/cosine encoding of "Attention Is All You Need".

    Channel ``2i`` holds ``sin(pos / base^(2i/D))`` and channel ``2i+1`` the cosine.

    Args:
        hidden_size: Embedding width (even).
        base: Wavelength base; 10000 in the paper.
    """

    def __init__(self, hidden_size: int, base: float = 10000.0) -> None:
        super().__init__()
        if hidden_size % 2:
            raise ValueError(
                f"hidden_size must be even for sinusoidal positions, got {hidden_size}"
            )
        self.hidden_size = hidden_size
        self.base = base

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        device = position_ids.device
        # (D/2,): frequencies 1 / base^(2i/D)
        inv_freq = torch.exp(
            torch.arange(0, self.hidden_size, 2, device=device, dtype=torch.float32)
            * (-math.log(self.base) / self.hidden_size)
        )
        angles = position_ids[..., None].float() * inv_freq  # (B, T, D/2)
        # Interleave sin and cos: (B, T, D/2, 2) -> (B, T, D)
        return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2)

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, base={self.base}"
