"""The original Forgather's pipeline-parallel names, on our `PipelineTrainer`.

Its configs build::

    model_splitter: !call:forgather.ml.trainer.pipeline:create_manual_causal_lm_splitter
    trainer_args: !singleton:forgather.ml.trainer.pipeline:PipelineTrainingArguments
        n_microbatches: 4
        ...
    trainer: !singleton:forgather.ml.trainer.pipeline:PipelineTrainer
        args: *trainer_args
        model_splitter: *model_splitter
        pipe_schedule_factory: !partial:torch.distributed.pipelining:Schedule1F1B
        ...

Here the splitter is a description of how to cut (`ModelSplitter`), applied by
`forgather.ml.trainer.parallel` (stages are the whole model with other stages'
parts passed through; see `pipeline_split`), and the schedule factory names
one of torch's schedules. Launch with ``forgather -t CONFIG train --nproc N``.

Differences: the automatic splitter does not trace the model (`torch.export`):
its split points pick the layers that begin stages in our own splitting, so
the stages are the same cut of the same model. `insert_activation_checkpoints`
wraps the matching modules of the model in activation checkpoints (the
original rewrote traced graph modules).
"""

from .adapters import (
    ModelSplitter,
    PipelineTrainer,
    PipelineTrainingArguments,
    create_automatic_splitter,
    create_manual_causal_lm_splitter,
    insert_activation_checkpoints,
)

__all__ = [
    "ModelSplitter",
    "PipelineTrainer",
    "PipelineTrainingArguments",
    "create_automatic_splitter",
    "create_manual_causal_lm_splitter",
    "insert_activation_checkpoints",
]
