"""Training: the trainers, their arguments, callbacks, checkpoints, the training script.

    from forgather.ml.trainer import Trainer, TrainingArguments
    trainer = Trainer(model=model, args=TrainingArguments("output_models/m", max_steps=500),
                      train_dataset=train, eval_dataset=val, data_collator=collate)
    trainer.train()

Configs and the CLI name only what this module exports (`!partial:forgather.ml.trainer:AccelTrainer`);
the callbacks are in `forgather.ml.trainer.callbacks`. Every other module is
private and free to change.

Decision a reader may question: every name is resolved lazily (PEP 562), so
`forgather train plot` does not load torch, and the multi-process trainers
(Accelerate, `torch.distributed.pipelining`) are imported only when named.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forgather._lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; never executed at run time
    from forgather.ml.checkpoint_layout import latest_checkpoint, list_checkpoints

    from .activation_checkpointing import enable_hf_activation_checkpointing
    from .base_trainer import BaseTrainer
    from .callbacks import TrainerCallback
    from .parallel.accel_trainer import AccelTrainer
    from .parallel.pipeline_checkpoint import merge_pipeline_checkpoint
    from .parallel.pipeline_trainer import PipelineTrainer
    from .plot import plot_run
    from .rng import set_seed
    from .sampler import ResumableShuffleSampler
    from .state import TrainerControl, TrainerState, TrainOutput
    from .trainer import Trainer
    from .training_args import IntervalStrategy, TrainingArguments
    from .training_script import TrainingScript

_LAZY = {
    "AccelTrainer": "parallel.accel_trainer",
    "BaseTrainer": "base_trainer",
    "IntervalStrategy": "training_args",
    "PipelineTrainer": "parallel.pipeline_trainer",
    "ResumableShuffleSampler": "sampler",
    "Trainer": "trainer",
    "TrainerCallback": "callbacks",
    "TrainerControl": "state",
    "TrainerState": "state",
    "TrainOutput": "state",
    "TrainingArguments": "training_args",
    "TrainingScript": "training_script",
    "enable_hf_activation_checkpointing": "activation_checkpointing",
    "latest_checkpoint": "forgather.ml.checkpoint_layout",
    "list_checkpoints": "forgather.ml.checkpoint_layout",
    "merge_pipeline_checkpoint": "parallel.pipeline_checkpoint",
    "plot_run": "plot",
    "set_seed": "rng",
}

__all__ = [
    "AccelTrainer",
    "BaseTrainer",
    "IntervalStrategy",
    "PipelineTrainer",
    "ResumableShuffleSampler",
    "TrainOutput",
    "Trainer",
    "TrainerCallback",
    "TrainerControl",
    "TrainerState",
    "TrainingArguments",
    "TrainingScript",
    "enable_hf_activation_checkpointing",
    "latest_checkpoint",
    "list_checkpoints",
    "merge_pipeline_checkpoint",
    "plot_run",
    "set_seed",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
