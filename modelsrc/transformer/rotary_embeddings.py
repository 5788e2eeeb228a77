"""Rotary position embeddings (RoPE), with optional Llama-3 frequency scaling.

RoPE rotates each (even, odd-half) channel pair of queries and keys by an angle
proportional to the token's position, so the query-key dot product depends
only on their relative position. Channels are paired as (i, i + head_dim/2)
("rotate half"), the layout of Llama checkpoints.

Decision a reader may question: the module holds no buffers; inverse
frequencies and the cos/sin tables are computed from ``position_ids`` on each
call. That is a handful of element-wise ops on (T, head_dim) tensors per
layer, and in exchange the module works unchanged on the ``meta`` device,
after ``from_pretrained``, when shared by every layer, and with packed
sequences whose positions restart at 0.
"""

import math

import torch
from torch import nn


def llama3_inv_freq(
    inv_freq: torch.Tensor,
    factor: float,
    low_freq_factor: float,
    high_freq_factor: float,
    original_max_position_embeddings: int,
) -> torch.Tensor:
    """Rescale RoPE inverse frequencies as Llama 3.1 does for long contexts.

    Wavelengths longer than ``original_max_position_embeddings / low_freq_factor``
    are stretched by ``factor``; shorter than ``.../high_freq_factor`` are kept;
    in between, the two are blended linearly in ``original / wavelength``.

    Args:
        inv_freq: (head_dim/2,) unscaled inverse frequencies.
        factor: Context extension factor for the low frequencies.
        low_freq_factor: Divides the original context to get the long-wavelength limit.
        high_freq_factor: Divides the original context to get the short-wavelength limit.
        original_max_position_embeddings: Context length the model was trained with.

    Returns:
        (head_dim/2,) scaled inverse frequencies.
    """
    wavelen = 2 * math.pi / inv_freq
    low_freq_wavelen = original_max_position_embeddings / low_freq_factor
    high_freq_wavelen = original_max_position_embeddings / high_freq_factor
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (original_max_position_embeddings / wavelen - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(is_medium, blended, scaled)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    """Applies RoPE to queries and keys inside attention.

    Args:
        head_dim: Size of each attention head (even).
        rope_theta: Base of the geometric frequency progression.
        llama3_scaling: ``None``, or a dict with ``factor``, ``low_freq_factor``,
            ``high_freq_factor`` and ``original_max_position_embeddings``
            (see :func:`llama3_inv_freq`).
    """

    def __init__(
        self,
        head_dim: int,
        rope_theta: float = 10000.0,
        llama3_scaling: dict | None = None,
    ) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {head_dim}")
        self.head_dim = head_dim
        self.rope_theta = rope_theta
        self.llama3_scaling = dict(llama3_scaling) if llama3_scaling else None

    def inv_freq(self, device: torch.device) -> torch.Tensor:
        """(head_dim/2,) float32 inverse frequencies, scaled if configured."""
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=device).float()
        inv_freq = 1.0 / (self.rope_theta ** (exponents / self.head_dim))
        if self.llama3_scaling is not None:
            inv_freq = llama3_inv_freq(inv_freq, **self.llama3_scaling)
        return inv_freq

    def forward(
        self, query: torch.Tensor, key: torch.Tensor, position_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate ``query`` (B, Hq, T, hd) and ``key`` (B, Hkv, T, hd) by ``position_ids`` (B|1, T)."""
        freqs = position_ids[..., None].float() * self.inv_freq(query.device)  # (B, T, hd/2)
        angles = torch.cat((freqs, freqs), dim=-1)  # (B, T, hd)
        # (B, 1, T, hd): broadcast over heads
        cos = angles.cos().to(query.dtype).unsqueeze(1)
        sin = angles.sin().to(query.dtype).unsqueeze(1)
        query = query * cos + rotate_half(query) * sin
        key = key * cos + rotate_half(key) * sin
        return query, key

    def extra_repr(self) -> str:
        scaling = f", llama3_scaling={self.llama3_scaling}" if self.llama3_scaling else ""
        return f"head_dim={self.head_dim}, rope_theta={self.rope_theta}{scaling}"
