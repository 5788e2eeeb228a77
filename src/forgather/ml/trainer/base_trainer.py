"""`BaseTrainer`: the training loop every trainer shares, and the hooks they override.

`train()` reads top to bottom: set up → restore a checkpoint → loop over
optimizer steps → finish. One optimizer step (`_train_step`) draws
`gradient_accumulation_steps` micro-batches from an endless `BatchStream`,
accumulates gradients, clips, steps; everything else (logging, evaluation,
checkpoints, stopping) happens between steps on requests that callbacks set
on `self.control`.

The decision a reader may question: the loop knows nothing about devices or
processes. Where the single-device `Trainer`, an Accelerate trainer (DDP/FSDP)
and a pipeline trainer differ, the loop calls a hook: `_setup` (placement,
wrapping, compiling), `_autocast`, `_backward`, `_no_sync` (skip gradient
all-reduce on all but the last micro-batch), `_clip_grad_norm`,
`_reduce_mean` (average a logged value over processes), `_sum_over_replicas`
and `_gradient_divisor` (the step's token accounting, see `step_tokens`),
`is_main_process`, `_barrier`, and `_save_model_state` / `_load_model_state`.
Their defaults here are the single-process behaviour.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from forgather.ml import checkpoint_layout as layout

from ..optim import AdamW, continue_schedule, get_scheduler
from . import checkpoint as ckpt
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
from .rng import get_rng_state, set_rng_state, set_seed
from .sampler import ResumableShuffleSampler
from .state import TrainerControl, TrainerState, TrainOutput
from .step_tokens import StepTokens, count_target_tokens
from .stop_signals import StopSignals
from .training_args import TrainingArguments

__all__ = ["BaseTrainer"]

logger = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], LRScheduler]


class BaseTrainer:
    """The shared training loop (see the module docstring); subclasses pick the device.

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
        defaults: list[TrainerCallback] = [DefaultFlowCallback(), PeakMemoryCallback()]
        if "json" in args.report_to:
            defaults.append(JsonLogCallback())
        if "tensorboard" in args.report_to:
            defaults.append(TensorBoardCallback())
        if not args.disable_tqdm:
            defaults.append(ProgressCallback())
        self.callback_handler = CallbackHandler(defaults + list(callbacks or []))
        self.state = TrainerState()
        self.control = TrainerControl()
        self.device = torch.device("cpu")
        self.optimizer: Optimizer | None = None
        self.lr_scheduler: LRScheduler | None = None
        self.batches: BatchStream | None = None
        self._is_setup = False
        self._last_saved_step = -1
        self._signals = StopSignals()

    # ------------------------------------------------------------------ hooks
    @property
    def is_main_process(self) -> bool:
        """True on the process that writes logs and checkpoints."""
        return True

    def _setup(self) -> None:
        """Choose `self.device`, place (and wrap or compile) the model."""
        raise NotImplementedError

    def _autocast(self) -> AbstractContextManager:
        """Mixed-precision context for forward and loss."""
        return contextlib.nullcontext()

    def _backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def _no_sync(self, last_micro_batch: bool) -> AbstractContextManager:
        """Context for one micro-batch's backward; DDP skips the all-reduce until the last."""
        return contextlib.nullcontext()

    def _clip_grad_norm(self) -> torch.Tensor | None:
        """Clip gradients to `args.max_grad_norm`; return the norm before clipping."""
        if self.args.max_grad_norm <= 0:
            return None
        return nn.utils.clip_grad_norm_(self.model.parameters(), self.args.max_grad_norm)

    def _reduce_mean(self, value: torch.Tensor) -> float:
        """A logged value averaged over processes, as a Python float (syncs the device)."""
        return value.item()

    def _sum_over_replicas(self, value: torch.Tensor) -> torch.Tensor:
        """`value` summed over the data-parallel ranks (those reading different data)."""
        return value

    def _gradient_divisor(self) -> int:
        """What the gradient reduction divides the ranks' summed gradients by (DDP: the ranks)."""
        return 1

    def _barrier(self) -> None:
        """Wait for every process (no-op with one)."""

    def _save_model_state(self, directory: str) -> None:
        ckpt.save_model_weights(self.model, os.path.join(directory, layout.MODEL_FILE))

    def _load_model_state(self, directory: str) -> None:
        ckpt.load_model_weights(self.model, os.path.join(directory, layout.MODEL_FILE))

    # -------------------------------------------------------------- building
    def _ensure_setup(self) -> None:
        if not self._is_setup:
            if self.model is None:
                set_seed(self.args.seed)  # the seed fixes the initial weights (HF's model_init)
                self.model = self.model_init()
            self._setup()
            self._is_setup = True

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
        return kwargs

    def create_optimizer(self) -> Optimizer:
        """The optimizer from `optimizer_factory`, or AdamW configured by `args`."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.optimizer_factory is not None:
            return self.optimizer_factory(params)
        args = self.args
        # Weight decay on matrices only: decaying biases and norm gains hurts (nanoGPT, GPT-3).
        groups = [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ]
        # The fused kernel (CPU and CUDA) is what HF's default "adamw_torch_fused" uses.
        fused = all(p.device.type in ("cpu", "cuda") for p in params) or None
        return AdamW(
            groups, lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
            eps=args.adam_epsilon, fused=fused,
        )  # fmt: skip

    def create_scheduler(self, optimizer: Optimizer, max_steps: int) -> LRScheduler:
        """The schedule from `lr_scheduler_factory`, or `args.lr_scheduler_type`."""
        if self.lr_scheduler_factory is not None:
            return self.lr_scheduler_factory(optimizer)
        args = self.args
        return get_scheduler(
            args.lr_scheduler_type, optimizer, args.warmup_steps, max_steps,
            **args.lr_scheduler_kwargs,
        )  # fmt: skip

    def _compute_max_steps(self) -> int:
        if self.args.max_steps > 0:
            return self.args.max_steps
        per_epoch = self.batches.batches_per_epoch
        if per_epoch is None:
            raise ValueError("max_steps must be set when the training dataset has no length")
        accumulation = self.args.gradient_accumulation_steps
        return max(1, math.ceil(self.args.num_train_epochs * per_epoch / accumulation))

    # ------------------------------------------------------------------ train
    def train(self, resume_from_checkpoint: bool | str | None = None) -> TrainOutput:
        """Train until `max_steps`, a stop request, or SIGTERM/SIGINT (which checkpoint first).

        Args:
            resume_from_checkpoint: Overrides `args.resume_from_checkpoint`: True
                resumes from the newest checkpoint in `<output_dir>/checkpoints`
                (starting fresh if there is none), a string from that checkpoint.

        Returns:
            Steps done, mean training loss of this call, and run metrics.
        """
        args = self.args
        self._ensure_setup()
        # After setup, so dropout and data draw the same numbers however the model was built.
        set_seed(args.seed)
        self.batches = BatchStream(self.get_train_dataloader(), seed=args.data_seed)
        max_steps = self._compute_max_steps()
        self.optimizer = self.create_optimizer()
        self.lr_scheduler = self.create_scheduler(self.optimizer, max_steps)
        self.state = TrainerState(
            max_steps=max_steps, train_batch_size=args.per_device_train_batch_size,
            logging_steps=args.logging_steps, eval_steps=args.eval_steps,
            save_steps=args.save_steps, is_world_process_zero=self.is_main_process,
        )  # fmt: skip
        self.control = TrainerControl()
        if resume_from_checkpoint is None:
            resume_from_checkpoint = args.resume_from_checkpoint
        checkpoint = self._find_checkpoint(resume_from_checkpoint)
        if checkpoint is not None:
            self._load_checkpoint(checkpoint)
        self.callback_handler.objects.update(
            model=self.model, optimizer=self.optimizer, lr_scheduler=self.lr_scheduler,
            train_dataloader=self.batches.dataloader, processing_class=self.processing_class,
        )  # fmt: skip

        self._signals = StopSignals()
        with self._signals:
            self._call("on_train_begin")
            if args.eval_on_start:
                self.evaluate()
            start_step, start_tokens = self.state.global_step, self.state.num_input_tokens_seen
            start_time = time.perf_counter()
            loss_sum = self._train_loop()
            runtime = time.perf_counter() - start_time
            steps = self.state.global_step - start_step
            tokens = self.state.num_input_tokens_seen - start_tokens
            metrics = {
                "train_runtime": round(runtime, 3),
                "train_steps_per_second": round(steps / max(runtime, 1e-9), 4),
                "train_tokens_per_second": round(tokens / max(runtime, 1e-9), 1),
            }
            if self._signals.received:
                metrics["stopped_by"] = self._signals.received
            self.log(dict(metrics))
            self._call("on_train_end")
        return TrainOutput(self.state.global_step, loss_sum / max(steps, 1), metrics)

    def _train_loop(self) -> float:
        """Optimizer steps until done; returns the sum of the step losses."""
        state, control = self.state, self.control
        window = _LogWindow(state.num_input_tokens_seen)
        loss_sum = 0.0
        self.model.train()
        if state.global_step < state.max_steps:
            self._call("on_epoch_begin")
        while state.global_step < state.max_steps and not self.control.should_training_stop:
            self._call("on_step_begin")
            lr = self.optimizer.param_groups[0]["lr"]  # the rate this step uses
            loss = self._train_step()  # () mean loss of the step's micro-batches
            grad_norm = self._clip_grad_norm()  # () norm before clipping, or None
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)

            epoch_before = int(state.epoch)
            state.global_step += 1
            state.epoch = self.batches.epoch_progress
            window.add(loss, grad_norm, lr)
            control = self._call("on_step_end")
            if int(state.epoch) > epoch_before:
                control = self._call("on_epoch_end")
                if not control.should_training_stop:
                    control = self._call("on_epoch_begin")
            if self._signals.received:
                logger.warning("%s: saving a checkpoint and stopping", self._signals.received)
                control.should_save = control.should_log = control.should_training_stop = True
            if control.should_log:
                loss_total = self._window_loss_total(window)
                loss_sum += loss_total
                self.log(self._window_logs(window, loss_total))
                window = _LogWindow(state.num_input_tokens_seen)
            self._evaluate_and_save(window)
        return loss_sum + self._window_loss_total(window)

    def _train_step(self) -> torch.Tensor:
        """Forward and backward over one step's micro-batches.

        Returns:
            () This rank's share of the step loss: summed over the data-parallel
            ranks it is the mean over every target token of the step.
        """
        batches, tokens = self._next_step_batches()
        # DDP and FSDP average the ranks' gradients; the loss is a sum over ranks.
        divisor = self._gradient_divisor()
        share = torch.zeros((), device=self.device)
        for micro, batch in enumerate(batches):
            batch = self._prepare_batch(batch)
            with self._no_sync(last_micro_batch=micro == len(batches) - 1):
                with self._autocast():
                    loss = self.compute_loss(self.model, batch)  # () mean over the batch's targets
                # Summed over micro-batches and ranks: the gradient of the step's token mean.
                self._backward(loss * (tokens.weight(micro) * divisor))
            share += loss.detach() * tokens.weight(micro)
        return share

    def _next_step_batches(self) -> tuple[list[Any], StepTokens]:
        """The step's micro-batches (as the loader gives them) and their token counts.

        All `gradient_accumulation_steps` micro-batches are drawn before the first
        forward pass: each one's weight needs the step's total number of targets,
        summed over the data-parallel ranks (a collective). They are moved to the
        device one at a time, by the caller.
        """
        batches = [next(self.batches) for _ in range(self.args.gradient_accumulation_steps)]
        tokens = StepTokens.count(batches, self.count_loss_tokens, self._sum_over_replicas)
        self.state.num_input_tokens_seen += tokens.total_inputs
        return batches, tokens

    def count_loss_tokens(self, batch: Any) -> int | None:
        """Target tokens the model's loss on `batch` averages over; None if unknown.

        The default follows Hugging Face's causal-LM convention (`labels`, shifted
        inside the model, -100 ignored); override it for another loss.
        """
        return count_target_tokens(batch)

    def compute_loss(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        """The scalar loss of one batch (HF style: `model(**inputs).loss`)."""
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

    def _evaluate_and_save(self, window: _LogWindow) -> None:
        """Honour evaluate/save requests; their time is kept out of tokens/s."""
        start = time.perf_counter()
        if self.control.should_evaluate:
            self.evaluate()
        if self.control.should_save:
            self._save_checkpoint()
        window.paused += time.perf_counter() - start
        self.control.new_step()

    def _window_loss_total(self, window: _LogWindow) -> float:
        """The window's summed step losses over all ranks (a collective; every rank calls it)."""
        if window.steps == 0:
            return 0.0
        return float(self._sum_over_replicas(torch.as_tensor(window.loss, dtype=torch.float32)))

    def _window_logs(self, window: _LogWindow, loss_total: float) -> dict[str, float]:
        logs = {
            "loss": loss_total / window.steps,
            "learning_rate": float(window.lr),
        }
        if window.grad_norm is not None:
            logs["grad_norm"] = self._reduce_mean(window.grad_norm) / window.steps
        tokens = self.state.num_input_tokens_seen - window.tokens_at_start  # all ranks
        logs["tokens_per_second"] = tokens / max(window.elapsed(), 1e-9)
        logs["num_input_tokens_seen"] = self.state.num_input_tokens_seen
        return logs

    # --------------------------------------------------------------- evaluate
    @torch.no_grad()
    def evaluate(
        self, eval_dataset: Dataset | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Mean loss over the evaluation batches (at most `args.max_eval_steps` of them).

        Returns:
            `{f"{prefix}_loss": ..., f"{prefix}_runtime": seconds}`, also logged.
        """
        self._ensure_setup()
        dataloader = self.get_eval_dataloader(eval_dataset)
        was_training = self.model.training
        self.model.eval()
        start = time.perf_counter()
        # Summed loss over targets, and targets (or batches, when the targets are unknown).
        total, count, batches = torch.zeros((), device=self.device), 0, 0
        for batch in dataloader:
            if 0 <= self.args.max_eval_steps <= batches:
                break
            targets = self.count_loss_tokens(batch)
            weight = 1 if targets is None else targets
            with self._autocast():
                loss = self.compute_loss(self.model, self._prepare_batch(batch)).float()
            total += loss * weight
            count += weight
            batches += 1
        self.model.train(was_training)
        if batches == 0:
            raise ValueError("the evaluation DataLoader yields no batches")
        # The token mean over every rank's share, as for the training loss.
        local = torch.stack([total.detach().cpu().double(), torch.tensor(float(count)).double()])
        sums = self._sum_over_replicas(local)
        metrics = {
            f"{metric_key_prefix}_loss": float(sums[0] / max(float(sums[1]), 1.0)),
            f"{metric_key_prefix}_runtime": round(time.perf_counter() - start, 3),
        }
        self.log(dict(metrics))
        self._call("on_evaluate", metrics=metrics)
        return metrics

    # ------------------------------------------------------------ logs, events
    def log(self, logs: dict[str, Any]) -> None:
        """Record a log entry (adds epoch and step) and send it to the `on_log` callbacks."""
        entry = {**logs, "epoch": round(self.state.epoch, 4), "step": self.state.global_step}
        self.state.log_history.append(entry)
        self._call("on_log", logs=entry)

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

    # ------------------------------------------------------------ checkpoints
    def _find_checkpoint(self, resume: bool | str | None) -> str | None:
        if not resume:
            return None
        if isinstance(resume, str):
            if not os.path.isfile(os.path.join(resume, layout.STATE_FILE)):
                raise FileNotFoundError(f"no complete checkpoint at {resume!r}")
            return resume
        found = layout.latest_checkpoint(self.args.checkpoints_dir)
        if found is None:
            logger.info("no checkpoint in %s: starting a new run", self.args.checkpoints_dir)
        return found

    def _save_checkpoint(self) -> str:
        """Write `checkpoint-<step>` atomically, prune old ones, fire `on_save`."""
        step = self.state.global_step
        path = layout.checkpoint_path(self.args.checkpoints_dir, step)
        if self._last_saved_step == step:
            return path
        if self.is_main_process:
            with ckpt.atomic_directory(path) as temp:
                self._save_model_state(temp)
                torch.save(self.optimizer.state_dict(), os.path.join(temp, layout.OPTIMIZER_FILE))
                torch.save(self.lr_scheduler.state_dict(), os.path.join(temp, layout.SCHEDULER_FILE))
                torch.save(self.batches.state_dict(), os.path.join(temp, layout.DATALOADER_FILE))
                torch.save(get_rng_state(), os.path.join(temp, layout.RNG_FILE))
                self.state.save_to_json(os.path.join(temp, layout.STATE_FILE))
            if self.args.save_total_limit:
                ckpt.prune_checkpoints(self.args.checkpoints_dir, self.args.save_total_limit)
        self._barrier()
        self._last_saved_step = step
        self._call("on_save", checkpoint_dir=path)
        return path

    def _load_checkpoint(self, path: str) -> None:
        """Restore everything `_save_checkpoint` wrote; RNG last, just before the loop."""
        logger.info("resuming from %s", path)

        def load(name: str) -> Any:
            return torch.load(os.path.join(path, name), map_location="cpu", weights_only=True)

        self._load_model_state(path)
        self.optimizer.load_state_dict(load(layout.OPTIMIZER_FILE))
        saved = TrainerState.load_from_json(os.path.join(path, layout.STATE_FILE))
        self._restore_lr_scheduler(load(layout.SCHEDULER_FILE), saved)
        self.batches.load_state_dict(load(layout.DATALOADER_FILE))
        self.state.global_step = saved.global_step
        self.state.epoch = saved.epoch
        self.state.num_input_tokens_seen = saved.num_input_tokens_seen
        self.state.log_history = saved.log_history
        self._last_saved_step = saved.global_step
        set_rng_state(load(layout.RNG_FILE))

    def _restore_lr_scheduler(self, state: dict[str, Any], saved: TrainerState) -> None:
        """Restore the schedule; on a new horizon keep the one built for it, at the saved step.

        A checkpoint's schedule was built for the run's `max_steps` then; resumed
        with a larger one, it would run past its end at its final rate (0 for the
        linear and cosine defaults). As Hugging Face's Trainer does, the schedule
        built for the new `max_steps` is kept and only its position restored.
        """
        if saved.max_steps == self.state.max_steps:
            self.lr_scheduler.load_state_dict(state)  # the same curve, exactly
            return
        logger.warning(
            "resuming at step %d with max_steps=%d (the checkpoint's run had %d): "
            "the learning-rate schedule continues on a curve built for %d steps",
            saved.global_step, self.state.max_steps, saved.max_steps, self.state.max_steps,
        )  # fmt: skip
        if not continue_schedule(self.lr_scheduler, state):
            logger.warning(
                "%s cannot be moved to a new horizon: it keeps the checkpoint's (%d steps)",
                type(self.lr_scheduler).__name__, saved.max_steps,
            )  # fmt: skip
            self.lr_scheduler.load_state_dict(state)

    def save_model(self, output_dir: str | None = None) -> str:
        """Save the weights (and tokenizer) for inference, to `output_dir` or `args.output_dir`.

        Uses `save_pretrained` when the model has it (a transformers model: also
        writes `config.json`), else `model.safetensors`.

        Returns:
            The directory written.
        """
        output_dir = output_dir or self.args.output_dir
        if self.is_main_process:
            os.makedirs(output_dir, exist_ok=True)
            if hasattr(self.model, "save_pretrained"):
                self.model.save_pretrained(output_dir)
            else:
                ckpt.save_model_weights(self.model, os.path.join(output_dir, layout.MODEL_FILE))
            if hasattr(self.processing_class, "save_pretrained"):
                self.processing_class.save_pretrained(output_dir)
        self._barrier()
        return output_dir


class _LogWindow:
    """Sums over the steps since the last training log entry (tensors: no device sync)."""

    def __init__(self, tokens_at_start: int) -> None:
        self.tokens_at_start = tokens_at_start
        self.start = time.perf_counter()
        self.paused = 0.0  # seconds spent evaluating and saving, excluded from throughput
        self.steps = 0
        self.loss: torch.Tensor | float = 0.0
        self.grad_norm: torch.Tensor | None = None
        self.lr: float | torch.Tensor = 0.0  # a tensor for optimizers with tensor lr

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor | None, lr) -> None:
        self.steps += 1
        self.loss = self.loss + loss
        if grad_norm is not None:
            self.grad_norm = grad_norm if self.grad_norm is None else self.grad_norm + grad_norm
        self.lr = lr

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused
