"""Small helpers the original Forgather's notebooks and code import from `forgather.ml.utils`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["count_parameters", "default_dtype"]


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype | str) -> Iterator[None]:
    """Create floating-point tensors in `dtype` inside the block (e.g. to build a bf16 model)."""
    from forgather.ml.trainer.torch_settings import torch_dtype

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype(dtype))
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def count_parameters(model: nn.Module) -> dict[str, str]:
    """`{"total": "1.23M", "trainable": "1.23M"}`: the model's parameter counts, readable."""

    def readable(n: int) -> str:
        for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if n >= size:
                return f"{n / size:.2f}{unit}"
        return str(n)

    params = list(model.parameters())
    return {
        "total": readable(sum(p.numel() for p in params)),
        "trainable": readable(sum(p.numel() for p in params if p.requires_grad)),
    }
