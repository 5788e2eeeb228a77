"""Training: `Trainer`, its arguments, callbacks, checkpoints and run plots.

    from forgather.ml.trainer import Trainer, TrainingArguments
    trainer = Trainer(model=model, args=TrainingArguments("output_models/m", max_steps=500),
                      train_dataset=train, eval_dataset=val, data_collator=collate)
    trainer.train()
"""

from .base_trainer import BaseTrainer
from .callbacks import TrainerCallback
from .checkpoint import latest_checkpoint, list_checkpoints
from .plot import plot_run
from .rng import set_seed
from .sampler import ResumableShuffleSampler
from .state import TrainerControl, TrainerState, TrainOutput
from .trainer import Trainer
from .training_args import TrainingArguments

# Multi-process trainers import accelerate / torch.distributed.pipelining: on use only.
_LAZY = {
    "AccelTrainer": "forgather.ml.trainer.accel_trainer",
    "PipelineTrainer": "forgather.ml.trainer.pipeline_trainer",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'forgather.ml.trainer' has no attribute {name!r}")


__all__ = [
    "AccelTrainer",
    "PipelineTrainer",
    "BaseTrainer",
    "ResumableShuffleSampler",
    "TrainOutput",
    "Trainer",
    "TrainerCallback",
    "TrainerControl",
    "TrainerState",
    "TrainingArguments",
    "latest_checkpoint",
    "list_checkpoints",
    "plot_run",
    "set_seed",
]
