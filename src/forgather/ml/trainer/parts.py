"""`TrainerParts`: what a trainer is made of, and the hooks where trainers differ.

The parts are the constructor's arguments (model, data, optimizer factories,
callbacks) and what setup and `train()` build from them (device, the module
this process steps, optimizer, schedule, batch stream, state); every attribute
of a trainer is set and documented here. `BaseTrainer` (the loop) adds none.

The loop knows nothing about devices or processes: wherever the single-device
`Trainer`, `AccelTrainer` (DDP/FSDP) and `PipelineTrainer` differ, it calls one
of these methods, whose defaults are one process on one device:

- placement: `_setup` places (wraps, compiles or splits) `model` and returns
  `local_model`, the module this process runs and steps; `_should_compile`
  (`args.torch_compile`, "auto" decided for the run); `_callback_model`;
- numerics: `_autocast`, `_backward`, `_no_sync`, `_gradient_norm`;
- processes: `is_main_process`, `_barrier`, `_reduce_mean`, `_sum_over_replicas`,
  `_gradient_divisor` (the step's token accounting, see `step_tokens`), and the
  stop policy `_stop_signals`;
- data, optimizer and loss (Hugging Face's override points): `get_train_dataloader`,
  `get_eval_dataloader`, `create_optimizer`, `create_scheduler`, `compute_loss`,
  `count_loss_tokens`;
- checkpoints, one vocabulary for every trainer (`BaseTrainer._save_checkpoint`
  writes the rest): `_checkpoint_directory`, `_rank_file`, `_checkpoint_layout`,
  `_save_model_and_optimizer`, `_load_model_and_optimizer`;
- the final model: `_write_model`.

The decision a reader may question: the hooks are methods of a base class, as
in Hugging Face's and Lightning's trainers, rather than a strategy object
handed to the trainer: a subclass overrides the few that differ and reads the
parts directly. No hook replaces an attribute the loop reads; a trainer that
splits the model returns its part from `_setup` instead of swapping `model`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn
from torch.nn.utils import get_total_norm
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from forgather.ml import checkpoint_layout as layout

from .activation_checkpointing import enable_hf_activation_checkpointing
from .batch_stream import BatchStream, resumable_dataloader
from .callbacks import (
    CallbackHandler,
    DefaultFlowCallback,
    JsonLogCallback,
    PeakMemoryCallback,
    ProgressCallback,
    TensorBoardCallback,
    TrainerCallback,
)
from .checkpoint import atomic_directory, load_model_weights, save_model_weights
from .cpu_bf16 import Float32Gemms, resolve_bf16_gemm
from .model_loss import ModelLoss
from .optimization import OptimizerFactory, SchedulerFactory, default_optimizer, default_scheduler
from .sampler import ResumableShuffleSampler
from .state import TrainerControl, TrainerState
from .step_tokens import count_target_tokens
from .stop_signals import StopSignals
from .torch_settings import (
    apply_global_settings,
    compile_decision,
    compiler_available,
    planned_steps,
)
from .training_args import TrainingArguments

__all__ = ["TrainerParts"]

logger = logging.getLogger(__name__)


class TrainerParts:
    """A trainer's parts and the hooks where trainers differ (see the module docstring).

    Args:
        model: A causal LM: `model(**batch)` returns an object or dict with a
            scalar `loss` (Hugging Face style), or a tuple whose first item is it.
            The loss is the mean over the batch's target tokens (see `step_tokens`).
            None when `model_init` is given.
        args: The run's settings (required).
        train_dataset: Map-style or iterable dataset of samples for `data_collator`.
        eval_dataset: Dataset for `evaluate()`; required when `args.eval_strategy` is set.
        data_collator: Turns a list of samples into a batch dict; None: torch's default.
        processing_class: The tokenizer, handed to callbacks (text samples) and
            saved by `save_model`.
        callbacks: Callbacks (instances or classes) added after the default ones.
        optimizer_factory: `factory(params) -> Optimizer`, called with the
            trainable parameters; None: AdamW from `args` (no decay on 1-d tensors).
        lr_scheduler_factory: `factory(optimizer) -> LRScheduler`; None: the
            `args.lr_scheduler_type` schedule over the run's steps.
        train_sampler: Order of a map-style `train_dataset` (not in HF); None:
            `ResumableShuffleSampler(seed=args.data_seed)`. A sampler with
            `state_dict`/`load_state_dict` is checkpointed with its state.
        model_init: Instead of `model` (as in HF): called with no arguments,
            after seeding with `args.seed`, to build the model, so that the seed
            fixes its initial weights. A model built before the trainer is
            initialised by whatever seeded the generators then.
        compute_loss_func: `loss_fn(logits, labels) -> loss` (the original
            Forgather's, e.g. `forgather.ml.loss.CausalLoss()`): the model is
            called without `labels` and this computes the loss from its
            logits. It must be the mean over the targets `count_loss_tokens`
            counts. None: the model's own `loss`.
        fused_loss_factory: `factory(output_embeddings) -> loss_fn(hidden, labels)`
            (e.g. `forgather.ml.loss.LinearCrossEntropyLoss`): the loss is
            computed from the final hidden states without materialising the
            logits. Models that cannot give their hidden states fall back to
            `compute_loss_func` (with a warning).
        enable_activation_checkpoint_fn: `fn(rank, model)`, called at setup
            when `args.gradient_checkpointing`; default: the model's own
            `gradient_checkpointing_enable` (Hugging Face's).
        distributed_env: The original Forgather's `DistributedEnvironment`;
            accepted for its configs (the trainers find rank and device themselves).
        optimizer_cls_and_kwargs: `(cls, kwargs)` instead of `optimizer_factory` (as in HF).

    Attributes:
        model: The model as given (or built by `model_init`), unwrapped. A
            trainer that splits it (`PipelineTrainer`) holds only its part after
            setup, and `model` is then None.
        local_model: What this process runs forward and steps, set by `_setup`:
            `model` itself, or this rank's pipeline stages. The optimizer gets
            its parameters; the loop switches it between train and eval mode.
        device: Where batches go (set by `_setup`).
        optimizer, lr_scheduler, batches: Built by `train()`; `batches` is the
            endless, resumable stream of training batches.
        state, control: The run's progress and the requests callbacks make
            (`state.py`).
        callback_handler: Dispatches the events; its `objects` are the keyword
            arguments every event gets (`model` is `_callback_model()`).
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        train_dataset: Dataset | None = None,
        eval_dataset: Dataset | None = None,
        data_collator: Callable[[list[Any]], Any] | None = None,
        processing_class: Any = None,
        callbacks: list[TrainerCallback | type[TrainerCallback]] | None = None,
        optimizer_factory: OptimizerFactory | None = None,
        lr_scheduler_factory: SchedulerFactory | None = None,
        train_sampler: Sampler | None = None,
        model_init: Callable[[], nn.Module] | None = None,
        compute_loss_func: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        fused_loss_factory: Callable[[nn.Module], Callable[..., torch.Tensor]] | None = None,
        enable_activation_checkpoint_fn: Callable[[int, nn.Module], None] | None = (
            enable_hf_activation_checkpointing
        ),
        distributed_env: Any = None,
        optimizer_cls_and_kwargs: tuple[type[Optimizer], dict[str, Any]] | None = None,
    ) -> None:
        if args is None:
            raise TypeError(f"{type(self).__name__} needs args (a TrainingArguments)")
        if (model is None) == (model_init is None):
            raise ValueError("give either a model or a model_init")
        if args.eval_strategy != "no" and eval_dataset is None:
            raise ValueError(f"eval_strategy={args.eval_strategy!r} needs an eval_dataset")
        self.model = model
        self.model_init = model_init
        self.args = args
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.data_collator = data_collator
        self.processing_class = processing_class
        self.optimizer_factory = optimizer_factory
        self.lr_scheduler_factory = lr_scheduler_factory
        self.train_sampler = train_sampler
        if optimizer_factory is None and optimizer_cls_and_kwargs is not None:
            cls, kwargs = optimizer_cls_and_kwargs
            self.optimizer_factory = functools.partial(cls, **kwargs)
        self.loss = ModelLoss(compute_loss_func, fused_loss_factory)
        self.enable_activation_checkpoint_fn = enable_activation_checkpoint_fn
        self.distributed_env = distributed_env
        apply_global_settings(args)
        callbacks = list(callbacks or [])
        defaults: list[TrainerCallback] = [DefaultFlowCallback(), PeakMemoryCallback()]
        if "json" in args.report_to:
            defaults.append(JsonLogCallback())
        if "tensorboard" in args.report_to:
            defaults.append(TensorBoardCallback())
        if not args.disable_tqdm:
            defaults.append(ProgressCallback())
        # A callback given of a default's class (or a subclass) replaces that default.
        given = [cb if isinstance(cb, type) else type(cb) for cb in callbacks]
        defaults = [d for d in defaults if not any(issubclass(g, type(d)) for g in given)]
        self.callback_handler = CallbackHandler(defaults + callbacks)
        self.state = TrainerState()
        self.control = TrainerControl()
        self.device = torch.device("cpu")
        self.local_model: nn.Module | None = None
        self.optimizer: Optimizer | None = None
        self.lr_scheduler: LRScheduler | None = None
        self.batches: BatchStream | None = None
        self._is_setup = False
        self._last_saved_step = -1  # a checkpoint of this step is already on disk
        self._signals = self._stop_signals()  # a fresh one for every train()

    # ------------------------------------------------------------- callbacks
    def _call(self, event: str, **kwargs: Any) -> TrainerControl:
        self.control = self.callback_handler.call(
            event, self.args, self.state, self.control, **kwargs
        )
        return self.control

    def add_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        """Add a callback (instance or class)."""
        self.callback_handler.add(callback)

    def remove_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        """Remove a callback given as an instance or by class."""
        self.callback_handler.remove(callback)

    def pop_callback(
        self, callback: TrainerCallback | type[TrainerCallback]
    ) -> TrainerCallback | None:
        """Remove a callback and return it (None if absent)."""
        return self.callback_handler.remove(callback)

    # ------------------------------------------------------------- placement
    def _setup(self) -> nn.Module:
        """Choose `self.device`; place (wrap, compile, split) `self.model`.

        Returns:
            `local_model`: the module this process runs forward and steps.
        """
        raise NotImplementedError

    def _should_compile(self) -> bool:
        """`args.torch_compile` for this run: "auto" compiles long runs the backend can compile.

        Called by `_setup` once `self.device` is chosen. A backend other than
        inductor is taken to compile anywhere (it cannot be checked).
        """
        setting = self.args.torch_compile
        if setting != "auto":
            return bool(setting)
        dataset = self.train_dataset
        length = None
        if dataset is not None and not isinstance(dataset, IterableDataset):
            length = len(dataset) if hasattr(dataset, "__len__") else None
        steps = planned_steps(self.args, length)
        backend = self.args.torch_compile_backend
        if backend not in (None, "inductor"):
            decision = compile_decision(setting, steps, True)
        else:
            decision = compile_decision(
                setting, steps, lambda: compiler_available(self.device.type)
            )
        if decision:
            logger.info("torch_compile='auto': compiling the model for a run of %d steps", steps)
        return decision

    def _callback_model(self) -> nn.Module | None:
        """The `model` callbacks receive; None where using it on one process alone would hang."""
        return self.model

    # -------------------------------------------------------------- numerics
    def _autocast(self) -> AbstractContextManager:
        """Mixed precision for forward and loss: bf16 autocast when `args.bf16`."""
        if not self.args.bf16:
            return contextlib.nullcontext()
        # Weights, gradients and optimizer state stay fp32; matmuls run in bf16.
        autocast = torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        if not self._float32_gemms:
            return autocast
        stack = contextlib.ExitStack()
        stack.enter_context(autocast)
        stack.enter_context(Float32Gemms())
        return stack

    def _backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    @functools.cached_property
    def _float32_gemms(self) -> bool:
        """Whether bf16 matmuls run as float32 GEMMs (`args.bf16_gemm`, `cpu_bf16.py`).

        Compiled models too: the mode is entered around the compiled call, so Dynamo
        traces through it and Inductor compiles float32 GEMMs.
        """
        if not self.args.bf16:
            return False
        return resolve_bf16_gemm(self.args.bf16_gemm, self.device) == "float32"

    def _no_sync(self, last_micro_batch: bool) -> AbstractContextManager:
        """Context for one micro-batch's backward; DDP skips the all-reduce until the last."""
        return contextlib.nullcontext()

    def _gradient_norm(self, grads: list[torch.Tensor]) -> torch.Tensor:
        """() The L2 norm of the whole model's gradient, from this process's gradient tensors."""
        return get_total_norm(grads, norm_type=2.0)

    # ------------------------------------------------------------- processes
    @property
    def is_main_process(self) -> bool:
        """True on the process that writes logs and the job's shared files."""
        return True

    def _barrier(self) -> None:
        """Wait for every process (no-op with one)."""

    def _reduce_mean(self, value: torch.Tensor) -> float:
        """A logged value averaged over processes, as a Python float (syncs the device)."""
        return value.item()

    def _sum_over_replicas(self, value: torch.Tensor) -> torch.Tensor:
        """`value` summed over the data-parallel ranks (those reading different data)."""
        return value

    def _gradient_divisor(self) -> int:
        """What the gradient reduction divides the ranks' summed gradients by (DDP: the ranks)."""
        return 1

    def _stop_signals(self) -> StopSignals:
        """The stop policy: SIGTERM/SIGINT become a checkpoint and a stop at a step boundary.

        Multi-process trainers return one whose `poll()` every rank agrees on.
        """
        return StopSignals()

    # ------------------------------------------------------ data, optimizer
    def get_train_dataloader(self) -> DataLoader:
        """The training DataLoader, positioned and resumed by a `BatchStream`."""
        if self.train_dataset is None:
            raise ValueError("Trainer.train() needs a train_dataset")
        sampler = self.train_sampler
        if sampler is None and not isinstance(self.train_dataset, IterableDataset):
            sampler = ResumableShuffleSampler(len(self.train_dataset), seed=self.args.data_seed)
        return resumable_dataloader(
            self.train_dataset, self.args.per_device_train_batch_size, sampler,
            collate_fn=self.data_collator, drop_last=self.args.dataloader_drop_last,
            **self._loader_kwargs(),
        )  # fmt: skip

    def get_eval_dataloader(self, eval_dataset: Dataset | None = None) -> DataLoader:
        """The evaluation DataLoader: dataset order, its own generator (no global RNG draw)."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("evaluate() needs an eval_dataset")
        return DataLoader(
            dataset, batch_size=self.args.per_device_eval_batch_size,
            collate_fn=self.data_collator, generator=torch.Generator(), **self._loader_kwargs(),
        )  # fmt: skip

    def _loader_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "num_workers": self.args.dataloader_num_workers,
            "pin_memory": self.args.dataloader_pin_memory and self.device.type == "cuda",
        }
        if self.args.dataloader_num_workers > 0:
            kwargs["prefetch_factor"] = self.args.dataloader_prefetch_factor
            kwargs["persistent_workers"] = self.args.dataloader_persistent_workers
        return kwargs

    def create_optimizer(self) -> Optimizer:
        """The optimizer from `optimizer_factory`, or AdamW configured by `args`.

        A factory that declares `wants_named_parameters = True` (on itself or
        the function a `functools.partial` wraps) gets `(name, parameter)` pairs.
        """
        named = [(n, p) for n, p in self.local_model.named_parameters() if p.requires_grad]
        if self.optimizer_factory is not None:
            factory = self.optimizer_factory
            if getattr(getattr(factory, "func", factory), "wants_named_parameters", False):
                return factory(named)
            return factory([p for _, p in named])
        return default_optimizer([p for _, p in named], self.args)

    def create_scheduler(self, optimizer: Optimizer, max_steps: int) -> LRScheduler:
        """The schedule from `lr_scheduler_factory`, or `args.lr_scheduler_type`."""
        if self.lr_scheduler_factory is not None:
            return self.lr_scheduler_factory(optimizer)
        return default_scheduler(optimizer, self.args, max_steps)

    # ------------------------------------------------------------------ loss
    def count_loss_tokens(self, batch: Any) -> int | None:
        """Target tokens the model's loss on `batch` averages over; None if unknown.

        The default follows Hugging Face's causal-LM convention (`labels`, shifted
        inside the model, -100 ignored); override it for another loss.
        """
        return count_target_tokens(batch)

    def compute_loss(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        """The scalar loss of one batch (HF style: `model(**inputs).loss`).

        With `compute_loss_func` or `fused_loss_factory`, that loss from the
        model's logits or hidden states instead (`ModelLoss`).
        """
        if self.loss.external:
            return self.loss(model, inputs)
        outputs = model(**inputs) if isinstance(inputs, dict) else model(*inputs)
        if isinstance(outputs, dict):
            return outputs["loss"]
        if isinstance(outputs, tuple | list):
            return outputs[0]
        return outputs.loss

    def _prepare_batch(self, batch: Any) -> Any:
        """Move a batch's tensors to the device."""
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=True)
        if isinstance(batch, dict):
            return {k: self._prepare_batch(v) for k, v in batch.items()}
        if isinstance(batch, list | tuple):
            return type(batch)(self._prepare_batch(v) for v in batch)
        return batch

    # ----------------------------------------------------------- checkpoints
    def _checkpoint_directory(self, path: str) -> AbstractContextManager[str]:
        """Yields the temporary directory a checkpoint is written into, renamed to `path` after."""
        return atomic_directory(path)

    def _rank_file(self, name: str) -> str:
        """This process's name for a per-process checkpoint file (RNG, data position)."""
        return name

    def _checkpoint_layout(self) -> dict[str, Any] | None:
        """What must match for a checkpoint to resume here (`distributed.json`); None: anything."""
        return None

    def _save_model_and_optimizer(self, directory: str) -> None:
        """Write the weights and optimizer state into a checkpoint (called on every process)."""
        save_model_weights(self.local_model, os.path.join(directory, layout.MODEL_FILE))
        torch.save(self.optimizer.state_dict(), os.path.join(directory, layout.OPTIMIZER_FILE))

    def _load_model_and_optimizer(self, directory: str) -> None:
        """Restore what `_save_model_and_optimizer` wrote (called on every process)."""
        load_model_weights(self.local_model, os.path.join(directory, layout.MODEL_FILE))
        path = os.path.join(directory, layout.OPTIMIZER_FILE)
        self.optimizer.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    # ----------------------------------------------------------- final model
    def _write_model(self, output_dir: str) -> None:
        """Write the whole model into `output_dir` (called on every process; the main one writes).

        Uses `save_pretrained` when the model has it (a transformers model: also
        writes `config.json`), else `model.safetensors`; a model with LoRA
        adapters (`forgather.ml.finetune`) writes only its adapter.
        """
        if not self.is_main_process:
            return
        os.makedirs(output_dir, exist_ok=True)
        if getattr(self.model, "peft_config", None) is not None:
            from forgather.ml.finetune.lora import is_lora_model, save_adapter

            if is_lora_model(self.model):
                save_adapter(self.model, self.model.state_dict(), output_dir)
                return
        if hasattr(self.model, "save_pretrained"):
            self.model.save_pretrained(output_dir)
        else:
            save_model_weights(self.model, os.path.join(output_dir, layout.MODEL_FILE))
