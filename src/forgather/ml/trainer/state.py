"""What the training loop and its callbacks share: `TrainerState` and `TrainerControl`.

`TrainerState` is the loop's progress (step, epoch, log history) and is saved
in every checkpoint as `trainer_state.json`. `TrainerControl` holds the requests
(log, evaluate, save, stop) that the loop honours at the next step boundary;
callbacks set them, which is how a callback or a signal steers training without
touching the loop. Both follow Hugging Face's classes of the same names.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

__all__ = ["TrainOutput", "TrainerControl", "TrainerState"]


@dataclass
class TrainerState:
    """Progress of a run; everything here is JSON and goes into checkpoints."""

    global_step: int = 0  # optimizer steps taken
    epoch: float = 0.0  # epochs of training data consumed (fractional)
    max_steps: int = 0
    num_input_tokens_seen: int = 0  # elements of input_ids fed to the model, padding included
    log_history: list[dict[str, Any]] = field(default_factory=list)
    train_batch_size: int = 0  # per micro-batch
    logging_steps: int = 0
    eval_steps: int = 0
    save_steps: int = 0
    is_world_process_zero: bool = True  # False on the other ranks of a distributed run
    # load_best_model_at_end: the best evaluation metric at a save, and that checkpoint
    best_metric: float | None = None
    best_model_checkpoint: str | None = None

    def save_to_json(self, path: str) -> None:
        """Write the state to `path` as indented JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f, indent=2)
            f.write("\n")

    @classmethod
    def load_from_json(cls, path: str) -> TrainerState:
        """Read a state written by `save_to_json`."""
        with open(path, encoding="utf-8") as f:
            return cls(**json.load(f))


@dataclass
class TrainerControl:
    """Requests to the loop, honoured at the next step boundary then cleared."""

    should_log: bool = False
    should_evaluate: bool = False
    should_save: bool = False
    should_training_stop: bool = False

    def new_step(self) -> None:
        """Clear the per-step requests (stopping stays requested)."""
        self.should_log = self.should_evaluate = self.should_save = False


class TrainOutput(NamedTuple):
    """What `Trainer.train()` returns (the fields of HF's TrainOutput)."""

    global_step: int
    training_loss: float  # mean loss over the steps of this call
    metrics: dict[str, Any]
