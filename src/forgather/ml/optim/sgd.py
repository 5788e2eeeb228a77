"""The original Forgather's minimal `SGD` (`p -= lr * grad`, `lr=1e-3`) on our fused SGD."""

from __future__ import annotations

from collections.abc import Iterable

from .fused import SGD as FusedSGD

__all__ = ["SGD"]


class SGD(FusedSGD):
    """Plain gradient descent: no momentum, no weight decay.

    Args:
        params: Parameters, parameter groups or (name, parameter) pairs.
        lr: Step size.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3) -> None:
        super().__init__(params, lr=lr)
