"""`PeakMemoryCallback`: adds the process's peak memory to every log entry.

On CPU the figure is the peak resident set size of the process (what the OS
reports as max RSS, i.e. since the process started, including everything
loaded before training); on CUDA also the peak memory allocated by tensors on
the model's device (`torch.cuda.max_memory_allocated`). Units: MiB.

It has a negative priority so that it runs before the callbacks that write
`logs` out (JSON, TensorBoard, progress bar).
"""

from __future__ import annotations

import sys

import torch

from .base import TrainerCallback

__all__ = ["PeakMemoryCallback", "peak_rss_mib"]


def peak_rss_mib() -> float | None:
    """Peak resident set size of this process in MiB, or None where unsupported."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


class PeakMemoryCallback(TrainerCallback):
    """Adds `peak_rss_mib` (and `peak_cuda_mib` on CUDA) to each log entry."""

    priority = -10

    def __init__(self) -> None:
        self.peak_rss_mib: float | None = None
        self.peak_cuda_mib: float | None = None

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        if logs is None:
            return
        self.peak_rss_mib = peak_rss_mib()
        if self.peak_rss_mib is not None:
            logs["peak_rss_mib"] = round(self.peak_rss_mib, 1)
        device = next(model.parameters()).device if model is not None else None
        if device is not None and device.type == "cuda":
            self.peak_cuda_mib = torch.cuda.max_memory_allocated(device) / 2**20
            logs["peak_cuda_mib"] = round(self.peak_cuda_mib, 1)
