"""`ProgressCallback`: a tqdm bar with step, loss, tokens/s and ETA.

The bar counts optimizer steps (so its ETA is the time to `max_steps`) and
starts at the resumed step. Loss and throughput come from the training log
entries, so the bar updates its figures every `logging_steps`; evaluation
results and saved checkpoints are printed above the bar.
"""

from __future__ import annotations

from tqdm.auto import tqdm

from .base import TrainerCallback

__all__ = ["ProgressCallback"]


class ProgressCallback(TrainerCallback):
    """Shows training progress on the terminal (rank 0 only)."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc="train",
                unit="step", dynamic_ncols=True,
            )  # fmt: skip

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
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
        if self.bar is not None:
            self.bar.write(f"step {state.global_step}: saved {checkpoint_dir}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
