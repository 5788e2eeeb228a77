"""`TensorBoardCallback`: log entries as TensorBoard scalars in the run directory.

Tags follow Hugging Face's convention so dashboards look the same: `eval_loss`
becomes `eval/loss`, anything else `train/<name>`; the x axis is the optimizer
step. The arguments of the run are recorded once as text. The writer is
created lazily in `on_train_begin` so that building the callback (for example
from a config) costs nothing and opens no file.
"""

from __future__ import annotations

import json
import numbers

from .base import TrainerCallback

__all__ = ["TensorBoardCallback"]


class TensorBoardCallback(TrainerCallback):
    """Writes scalars with `torch.utils.tensorboard.SummaryWriter`.

    Args:
        log_dir: Where the event files go; None: the run's `args.logging_dir`.
    """

    def __init__(self, log_dir: str | None = None) -> None:
        self.log_dir = log_dir
        self.writer = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: keep it lazy

        if self.writer is None:
            self.writer = SummaryWriter(log_dir=self.log_dir or args.logging_dir)
        self.writer.add_text("args", f"```\n{json.dumps(args.to_dict(), indent=2)}\n```")

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.writer is None or not logs:
            return
        for name, value in logs.items():
            if name == "step" or not isinstance(value, numbers.Real):
                continue
            tag = "eval/" + name[5:] if name.startswith("eval_") else "train/" + name
            self.writer.add_scalar(tag, value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
