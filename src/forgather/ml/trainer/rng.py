"""Random generator states: seeding a run, and saving / restoring every generator.

A resumed run continues exactly only if every generator the loop draws from
(dropout, shuffling, sampling in callbacks) continues where it stopped; the
checkpoint stores them all. NumPy is optional: torch does not require it.

The decision a reader may question: the NumPy state is stored as a tuple of
plain values and a tensor rather than NumPy's own objects, so that checkpoints
load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import random
from typing import Any

import torch

__all__ = ["get_rng_state", "set_rng_state", "set_seed"]


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's (if installed) and torch's generators on every device."""
    random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS
    try:
        import numpy as np
    except ImportError:
        return
    np.random.seed(seed)


def get_rng_state() -> dict[str, Any]:
    """States of every random generator the loop may draw from (Python, NumPy, torch)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    try:
        import numpy as np
    except ImportError:  # numpy is optional for torch; nothing to save then
        pass
    else:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        # Plain values so that torch.load(weights_only=True) accepts them.
        state["numpy"] = (kind, torch.from_numpy(keys.astype("int64")), pos, has_gauss, gauss)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generator states returned by `get_rng_state`."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        import numpy as np

        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, keys.numpy().astype("uint32"), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])
