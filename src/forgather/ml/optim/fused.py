"""torch's `AdamW` and `SGD` with their fused kernels chosen by default where torch has them.

torch's own default is the per-parameter loop on CPU (and `foreach` on CUDA);
its fused kernels update every parameter of a step in one call, on CPU and
CUDA alike, which is what Hugging Face's default `adamw_torch_fused` asks for.
These classes pass `fused=True` unless the caller chose `fused` or `foreach`,
or a parameter cannot take it (a device without the kernel, a non-float or
sparse tensor), or `differentiable=True`; everything else is torch's.

The decision a reader may question: fused and per-parameter updates are the
same arithmetic in a different order, so results differ in the last bits of
fp32; a caller who needs torch's exact default passes `fused=False`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

__all__ = ["AdamW", "SGD", "fused_supported"]


def _tensors(params: list[Any]) -> list[torch.Tensor]:
    """The tensors in `params`: tensors, (name, tensor) pairs, or groups of either."""
    tensors: list[torch.Tensor] = []
    for item in params:
        if isinstance(item, dict):
            group = item["params"]
            group = [group] if isinstance(group, torch.Tensor) else list(group)
            tensors.extend(_tensors(group))
        elif isinstance(item, tuple):
            tensors.append(item[1])
        else:
            tensors.append(item)
    return tensors


def fused_supported(params: list[Any]) -> bool:
    """True when every parameter can take torch's fused optimizer kernels."""
    devices = _get_fused_kernels_supported_devices()
    tensors = _tensors(params)
    return bool(tensors) and all(
        torch.is_tensor(t)
        and t.is_floating_point()
        and not t.is_sparse
        and t.device.type in devices
        for t in tensors
    )


def _with_fused(params: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    chosen = kwargs.get("fused") is not None or kwargs.get("foreach") is not None
    if chosen or kwargs.get("differentiable") or not fused_supported(params):
        return kwargs
    return {**kwargs, "fused": True}


class AdamW(torch.optim.AdamW):
    """`torch.optim.AdamW`, fused by default where supported (module docstring)."""

    def __init__(self, params: Iterable, *args: Any, **kwargs: Any) -> None:
        params = list(params)
        super().__init__(params, *args, **_with_fused(params, kwargs))


class SGD(torch.optim.SGD):
    """`torch.optim.SGD`, fused by default where supported (module docstring)."""

    def __init__(self, params: Iterable, *args: Any, **kwargs: Any) -> None:
        params = list(params)
        super().__init__(params, *args, **_with_fused(params, kwargs))
