"""The original Forgather's `AdamW` signature (`eps=1e-6`, `torch_compile`) on our fused AdamW.

Decoupled weight decay and bias-corrected moments, as torch implements them.
The original's own loop put `eps` before the bias correction (its effective
epsilon grew by `sqrt(1 - beta2**t)` in early steps); this one follows torch.
"""

from __future__ import annotations

from collections.abc import Iterable

from .fused import AdamW as FusedAdamW

__all__ = ["AdamW"]


class AdamW(FusedAdamW):
    """`torch.optim.AdamW` with the original's defaults, fused where supported (`fused.py`).

    Args:
        params: Parameters, parameter groups or (name, parameter) pairs.
        lr, betas, eps, weight_decay: As torch's AdamW (`eps` defaults to 1e-6).
        torch_compile: Accepted; torch's fused/foreach kernels are used instead.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        torch_compile: bool = False,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.torch_compile = torch_compile
