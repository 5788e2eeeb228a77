"""Normalisation layers: RMSNorm (LayerNorm is ``torch.nn.LayerNorm`` itself).

Decision a reader may question: RMSNorm computes in float32 and casts back
before scaling, exactly as Llama does, so bf16 training stays stable and
weights copied from a Llama checkpoint give the same numbers. The class is
named ``RMSNorm`` and keeps ``eps`` because vLLM swaps in its fused kernel for
modules whose class name ends with ``RMSNorm``, building it as ``cls(hidden)``.

In training (outside ``torch.compile``, which fuses the plain ops itself) the
same forward runs inside a custom autograd function whose backward is the
closed form ``rstd * (g - y * mean(g * y))``: it saves only the input and the
per-row ``rstd`` and takes about half the element-wise passes of autograd
through the plain ops.
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
        needs_grad = x.requires_grad or self.weight.requires_grad
        if needs_grad and torch.is_grad_enabled() and not torch.compiler.is_compiling():
            return _RMSNormFunction.apply(x, self.weight, self.eps)
        input_dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(input_dtype)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class _RMSNormFunction(torch.autograd.Function):
    """:class:`RMSNorm`'s forward (the same ops) with a closed-form backward."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        x32 = x.to(torch.float32)
        rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)  # (..., 1)
        ctx.save_for_backward(x, weight, rstd)
        return weight * (x32 * rstd).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        x, weight, rstd = ctx.saved_tensors
        y = x.to(torch.float32) * rstd  # the normalised input, recomputed
        grad_weight = None
        if ctx.needs_input_grad[1]:
            rows = tuple(range(grad.dim() - 1))
            grad_weight = (grad.to(torch.float32) * y).sum(rows).to(weight.dtype)
        if not ctx.needs_input_grad[0]:
            return None, grad_weight, None
        g = (grad * weight).to(torch.float32)  # d loss / d y
        dot = (g * y).mean(-1, keepdim=True)
        grad_x = torch.addcmul(g, y, dot, value=-1).mul_(rstd)
        return grad_x.to(x.dtype), grad_weight, None
