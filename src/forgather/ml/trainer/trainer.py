"""`Trainer`: the training loop on one device (CUDA, MPS or CPU).

Everything about the loop lives in `BaseTrainer`; this class only answers the
device questions: which device (CUDA, then MPS, then CPU, unless
`args.use_cpu`), bf16 autocast, and `torch.compile`.

The decision a reader may question: the model is compiled in place with
`nn.Module.compile()` rather than wrapped by `torch.compile(model)`, so its
`state_dict` keys stay the same and checkpoints of compiled and eager runs are
interchangeable.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager

import torch

from .base_trainer import BaseTrainer

__all__ = ["Trainer"]


class Trainer(BaseTrainer):
    """Single-device trainer; constructed like Hugging Face's (see `BaseTrainer`).

    Example:
        >>> trainer = Trainer(model=model, args=TrainingArguments("out", max_steps=100),
        ...                   train_dataset=train, data_collator=collate)  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
    """

    def _setup(self) -> None:
        self.device = self._select_device()
        self.model.to(self.device)
        if self.args.torch_compile:
            self.model.compile(mode=self.args.torch_compile_mode)

    def _select_device(self) -> torch.device:
        if self.args.use_cpu:
            return torch.device("cpu")
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")

    def _autocast(self) -> AbstractContextManager:
        if not self.args.bf16:
            return contextlib.nullcontext()
        # Weights, gradients and optimizer state stay fp32; matmuls run in bf16.
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
