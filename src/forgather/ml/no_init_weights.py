"""`no_init_weights()`: build a model without spending time on initialising its weights.

Inside the block, `torch.nn.init`'s initialisers do nothing, so a model whose
weights will be loaded from a checkpoint right after is built quickly. Tensors
are still allocated (their contents are whatever memory held): load weights
before using the model. For building without allocating at all, use
``torch.device("meta")``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

__all__ = ["no_init_weights"]

_INITIALISERS = (
    "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_", "eye_",
    "dirac_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
    "orthogonal_", "sparse_", "uniform", "normal", "constant", "xavier_uniform",
    "xavier_normal", "kaiming_uniform", "kaiming_normal",
)  # fmt: skip


@contextlib.contextmanager
def no_init_weights() -> Iterator[None]:
    """Make `torch.nn.init`'s initialisers no-ops inside the block (restored after)."""
    saved = {n: getattr(torch.nn.init, n) for n in _INITIALISERS if hasattr(torch.nn.init, n)}

    def skip(tensor, *args, **kwargs):
        return tensor

    for name in saved:
        setattr(torch.nn.init, name, skip)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)
