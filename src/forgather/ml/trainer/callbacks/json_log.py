"""`JsonLogCallback`: the run's log history as `<logging_dir>/trainer_logs.json`.

The file is a JSON array with one entry per line (each entry is one `on_log`:
training window, evaluation or summary) and is valid JSON after every write, so
`forgather plot` and `jq` can read a run that is still going or has crashed.

The decision a reader may question: entries are appended in place (the
closing bracket is overwritten) rather than rewriting the whole history each
time, which would cost O(steps²) I/O on long runs with frequent logging. The
whole file is rewritten once per `train()` from `state.log_history`, so after a
resume it holds exactly the history of the checkpoint that was resumed.
"""

from __future__ import annotations

import json
import os

from forgather.ml.checkpoint_layout import LOG_FILE

from .base import TrainerCallback

__all__ = ["JsonLogCallback"]

_CLOSE = b"\n]\n"


class JsonLogCallback(TrainerCallback):
    """Writes every log entry to a JSON array in the run directory.

    Args:
        filename: Name of the file inside `args.logging_dir`.
    """

    def __init__(self, filename: str = LOG_FILE) -> None:
        self.filename = filename
        self.path: str | None = None
        self._entries = 0

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        os.makedirs(args.logging_dir, exist_ok=True)
        self.path = os.path.join(args.logging_dir, self.filename)
        lines = [json.dumps(entry, default=str) for entry in state.log_history]
        with open(self.path, "wb") as f:
            f.write(b"[\n" + ",\n".join(lines).encode() + (_CLOSE if lines else b"]\n"))
        self._entries = len(lines)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.path is None or logs is None:
            return
        line = json.dumps(logs, default=str).encode()
        with open(self.path, "r+b") as f:
            if self._entries:
                f.seek(-len(_CLOSE), os.SEEK_END)
                f.write(b",\n" + line + _CLOSE)
            else:
                f.seek(-len(b"]\n"), os.SEEK_END)
                f.write(line + _CLOSE)
        self._entries += 1
