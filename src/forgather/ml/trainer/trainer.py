"""`Trainer`: the training loop on one device (CUDA, MPS or CPU).

Everything about the loop lives in `BaseTrainer`, and bf16 autocast is the
default of its hooks; this class only answers the device questions: which
device (`args.device`, else CUDA, then MPS, then CPU, unless `args.use_cpu`),
and `torch.compile` (`torch_compile`: True, False, or "auto": runs of at least
`AUTO_COMPILE_MIN_STEPS` steps where inductor can compile; `_should_compile`).

The decision a reader may question: the model is compiled in place with
`nn.Module.compile()` rather than wrapped by `torch.compile(model)`, so its
`state_dict` keys stay the same and checkpoints of compiled and eager runs are
interchangeable.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from .base_trainer import BaseTrainer
from .training_args import TrainingArguments

# TrainingArguments too: the original Forgather's configs name `forgather.ml.trainer.trainer:TrainingArguments`.
__all__ = ["Trainer", "TrainingArguments"]


class Trainer(BaseTrainer):
    """Single-device trainer, constructed like Hugging Face's (arguments: `TrainerParts`).

    Example:
        >>> trainer = Trainer(model=model, args=TrainingArguments("out", max_steps=100),
        ...                   train_dataset=train, data_collator=collate)  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
    """

    def _setup(self) -> nn.Module:
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world > 1:  # each process would train alone and write over the others' files
            raise RuntimeError(
                f"Trainer trains in one process, but this is one of {world} started together "
                "(WORLD_SIZE, e.g. `forgather train --nproc`): use AccelTrainer (DDP or FSDP; "
                "a config extending accel_training_script.yaml) or PipelineTrainer, or start "
                "one process"
            )
        self.device = self._select_device()
        self.model.to(self.device)
        if self._should_compile():
            options = {
                "mode": self.args.torch_compile_mode,
                "backend": self.args.torch_compile_backend,
                "dynamic": self.args.torch_compile_dynamic,
                "fullgraph": self.args.torch_compile_full_graph,
            }
            self.model.compile(**{k: v for k, v in options.items() if v is not None})
        return self.model  # this process steps the whole model

    def _select_device(self) -> torch.device:
        if self.args.use_cpu:
            return torch.device("cpu")
        if self.args.device is not None:
            return torch.device(self.args.device)
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
