"""ALiBi: attention with linear biases (Press et al., 2022).

Instead of encoding positions in the embeddings, each head adds
``-slope_h * (query_index - key_index)`` to its attention scores, so distant
keys are penalised linearly with a head-specific slope.

Decision a reader may question: the bias is folded into the attention mask
inside each attention module, making a (B|1, H, T, S) float mask. That
works with the ``eager`` and ``sdpa`` implementations only: flash and
vLLM's attention do not accept a per-head bias through the transformers
attention interface, and the attention module refuses them with ALiBi rather
than silently dropping the bias. Distances are token-index differences, which
equal position differences inside a document (other documents and padding
are masked out anyway), so the bias is right for packed and padded batches.
"""

import math

import torch
from torch import nn


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """Per-head slopes: a geometric sequence starting at ``2^(-8/n)``.

    For a head count that is not a power of two, the slopes of the nearest
    lower power of two are followed by every other slope of the next one, as
    in the paper's reference code.

    >>> alibi_slopes(4).tolist()
    [0.25, 0.0625, 0.015625, 0.00390625]
    """

    def power_of_two_slopes(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(num_heads).is_integer():
        slopes = power_of_two_slopes(num_heads)
    else:
        lower = 2 ** math.floor(math.log2(num_heads))
        slopes = (
            power_of_two_slopes(lower) + power_of_two_slopes(2 * lower)[0::2][: num_heads - lower]
        )
    return torch.tensor(slopes, dtype=torch.float32)


class ALiBi(nn.Module):
    """Adds ALiBi biases to an attention mask.

    Args:
        num_heads: Number of query heads.
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads

    def forward(
        self, attention_mask: torch.Tensor | None, query: torch.Tensor, key: torch.Tensor
    ) -> torch.Tensor:
        """Return an additive (B|1, H, T, S) mask for ``query`` (B, H, T, hd), ``key`` (B, Hkv, S, hd).

        ``attention_mask`` may be None (plain causal), boolean (True = allowed)
        or additive float, with shape (B|1, 1, T, S).
        """
        q_len, kv_len = query.shape[2], key.shape[2]
        device, dtype = query.device, query.dtype
        q_pos = torch.arange(kv_len - q_len, kv_len, device=device)  # absolute query index (T,)
        k_pos = torch.arange(kv_len, device=device)  # (S,)
        distance = (q_pos[:, None] - k_pos[None, :]).clamp(min=0).float()  # (T, S)
        slopes = alibi_slopes(self.num_heads).to(device)
        bias = (-slopes[:, None, None] * distance[None]).to(dtype)[None]  # (1, H, T, S)
        min_value = torch.finfo(dtype).min
        if attention_mask is None:
            causal = k_pos[None, :] <= q_pos[:, None]
            return bias.masked_fill(~causal, min_value)
        if attention_mask.dtype == torch.bool:
            return bias.masked_fill(~attention_mask, min_value)
        return bias + attention_mask

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}"
