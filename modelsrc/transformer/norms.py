"""Normalisation layers: RMSNorm (LayerNorm is ``torch.nn.LayerNorm`` itself).

Decision a reader may question: RMSNorm computes in float32 and casts back
before scaling, exactly as Llama does, so bf16 training stays stable and
weights copied from a Llama checkpoint give the same numbers. The class is
named ``RMSNorm`` and keeps ``eps`` because vLLM swaps in its fused kernel for
modules whose class name ends with ``RMSNorm``, building it as ``cls(hidden)``.
"""

import torch
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square normalisation with a learned per-channel scale.

    Args:
        normalized_shape: Size of the last dimension.
        eps: Added to the mean square before the square root.
    """

    def __init__(self, normalized_shape: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        input_dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(input_dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
