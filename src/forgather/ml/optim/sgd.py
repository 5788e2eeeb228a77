"""The original Forgather's minimal `SGD` (`p -= lr * grad`, `lr=1e-3`) on torch's SGD."""

from __future__ import annotations

from collections.abc import Iterable

import torch

__all__ = ["SGD"]


class SGD(torch.optim.SGD):
    """Plain gradient descent: no momentum, no weight decay.

    Args:
        params: Parameters, parameter groups or (name, parameter) pairs.
        lr: Step size.
    """

    def __init__(self, params: Iterable, lr: float = 1e-3) -> None:
        super().__init__(params, lr=lr)
