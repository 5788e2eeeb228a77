"""`ProgressCallback`: a tqdm bar with step, loss, tokens/s and ETA.

The bar counts optimizer steps (so its ETA is the time to `max_steps`) and
starts at the resumed step. Loss and throughput come from the training log
entries, so the bar updates its figures every `logging_steps`; evaluation
results and saved checkpoints are printed above the bar.

Without a terminal (output to a file or pipe), or with `use_tqdm=False`, each
log entry is printed as a timestamped line instead of drawing a bar (the
original Forgather's `use_tqdm`/`output_stream` arguments).
"""

from __future__ import annotations

import sys
import time
from typing import IO

from tqdm.auto import tqdm

from .base import TrainerCallback

__all__ = ["ProgressCallback"]

_STREAMS = {"stdout": lambda: sys.stdout, "stderr": lambda: sys.stderr}


class ProgressCallback(TrainerCallback):
    """Shows training progress on the terminal (rank 0 only).

    Args:
        use_tqdm: True: a tqdm bar; False: one line per log entry; None: a bar
            when `output_stream` is a terminal.
        output_stream: "stdout", "stderr" or a text stream; None: the bar's
            default (stderr) or, for lines, stdout.
    """

    def __init__(self, use_tqdm: bool | None = None, output_stream: str | IO | None = None) -> None:
        if isinstance(output_stream, str) and output_stream not in _STREAMS:
            raise ValueError(
                f"output_stream must be 'stdout', 'stderr' or a stream, not {output_stream!r}"
            )
        self.use_tqdm = use_tqdm
        self.output_stream = output_stream
        self.bar: tqdm | None = None
        self._lines: IO | None = None  # where log lines go when there is no bar

    def _stream(self) -> IO | None:
        if isinstance(self.output_stream, str):
            return _STREAMS[self.output_stream]()
        return self.output_stream

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        stream = self._stream()
        use_tqdm = self.use_tqdm
        if use_tqdm is None:
            use_tqdm = self.output_stream is None or bool(getattr(stream, "isatty", bool)())
        if not use_tqdm:
            self._lines = stream or sys.stdout
            return
        if state.is_world_process_zero:
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc="train",
                unit="step", dynamic_ncols=True, file=stream,
            )  # fmt: skip

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self._lines is not None and logs:
            shown = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in logs.items()
                if k not in ("step", "epoch")
            )
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            print(f"{stamp} step {state.global_step}: {shown}", file=self._lines, flush=True)
            return
        if self.bar is None or not logs:
            return
        if "loss" in logs:
            postfix = {"loss": f"{logs['loss']:.4f}"}
            if "tokens_per_second" in logs:
                postfix["tok/s"] = f"{logs['tokens_per_second']:,.0f}"
            self.bar.set_postfix(postfix, refresh=False)
        evals = {k: v for k, v in logs.items() if k.startswith("eval_") and "loss" in k}
        if evals:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in evals.items())
            self.bar.write(f"step {state.global_step}: {shown}")

    def on_save(self, args, state, control, checkpoint_dir=None, **kwargs):
        if self._lines is not None:
            print(f"step {state.global_step}: saved {checkpoint_dir}", file=self._lines, flush=True)
        if self.bar is not None:
            self.bar.write(f"step {state.global_step}: saved {checkpoint_dir}")

    def on_train_end(self, args, state, control, **kwargs):
        self._lines = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
