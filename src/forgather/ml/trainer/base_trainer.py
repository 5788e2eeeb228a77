"""`BaseTrainer`: the training loop every trainer shares.

`train()` reads top to bottom: set up → restore a checkpoint → loop over
optimizer steps → finish. One optimizer step (`_train_step`) draws
`gradient_accumulation_steps` micro-batches from an endless `BatchStream`,
accumulates gradients, clips, steps; everything else (logging, evaluation,
checkpoints, stopping) happens between steps on requests that callbacks set
on `self.control`.

The decision a reader may question: the loop knows nothing about devices or
processes. Where the single-device `Trainer` and the multi-process trainers
(`parallel/`) differ, it calls a hook of `TrainerParts` (`parts.py`, which
lists them with their one-process defaults, and holds every attribute); a
subclass overrides hooks and never an attribute the loop reads.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import time
from typing import Any

import torch
from torch.nn.utils import clip_grads_with_norm_
from torch.utils.data import Dataset

from forgather.ml import checkpoint_layout as layout

from . import checkpoint
from .batch_stream import BatchStream
from .host_memory import release_freed_memory
from .log_window import LogWindow
from .optimization import materialize_adam_state, total_steps
from .parts import TrainerParts
from .rng import set_seed
from .state import TrainerControl, TrainerState, TrainOutput
from .step_tokens import StepTokens
from .threads import check_oversubscription
from .torch_settings import model_dtype_context, run_context, torch_dtype

__all__ = ["BaseTrainer"]

logger = logging.getLogger(__name__)


class BaseTrainer(TrainerParts):
    """The shared training loop (see the module docstring); subclasses pick the device.

    Constructed as `TrainerParts`, whose docstring lists the arguments and attributes.
    """

    # ------------------------------------------------------------------ setup
    def _ensure_setup(self) -> None:
        if not self._is_setup:
            if self.model is None:
                set_seed(self.args.seed)  # the seed fixes the initial weights (HF's model_init)
                with model_dtype_context(self.args):
                    self.model = self.model_init()
            elif self.args.default_dtype:
                self.model.to(torch_dtype(self.args.default_dtype))
            check_vocabulary(self.model, self.processing_class)
            if self.args.gradient_checkpointing and self.enable_activation_checkpoint_fn:
                self.enable_activation_checkpoint_fn(int(os.environ.get("RANK", "0")), self.model)
            self.local_model = self._setup()
            self.callback_handler.objects["model"] = self._callback_model()
            self._is_setup = True

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
        with run_context(self.args):
            return self._train(resume_from_checkpoint)

    def _train(self, resume_from_checkpoint: bool | str | None) -> TrainOutput:
        args = self.args
        self._ensure_setup()
        if self.is_main_process and self.device.type == "cpu":
            check_oversubscription()  # a warning naming the thread count that fits
        # After setup, so dropout and data draw the same numbers however the model was built.
        set_seed(args.seed)
        self.batches = BatchStream(self.get_train_dataloader(), seed=args.data_seed)
        max_steps = total_steps(args, self.batches.batches_per_epoch)
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
        resume = checkpoint.find_checkpoint(resume_from_checkpoint, args.checkpoints_dir)
        if resume is not None:
            self._load_checkpoint(resume)
        # Long-lived optimizer state below the first step's activations in the heap.
        materialize_adam_state(self.optimizer)
        self.callback_handler.objects.update(
            optimizer=self.optimizer, lr_scheduler=self.lr_scheduler,
            train_dataloader=self.batches.dataloader, processing_class=self.processing_class,
        )  # fmt: skip

        self._signals = self._stop_signals()
        with self._signals:
            self._call("on_train_begin")
            if args.eval_on_start and resume is None:  # the run's start, not a resumption's
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
            if self._signals.stopped_by:
                metrics["stopped_by"] = self._signals.stopped_by
            self.log(dict(metrics))
            if args.load_best_model_at_end:
                self._load_best_checkpoint()
            self._call("on_train_end")
        return TrainOutput(self.state.global_step, loss_sum / max(steps, 1), metrics)

    def _train_loop(self) -> float:
        """Optimizer steps until done; returns the sum of the step losses."""
        state, control = self.state, self.control
        window = self.__dict__.pop("_reopened_window", None) or LogWindow(
            state.num_input_tokens_seen
        )
        loss_sum = 0.0
        self.local_model.train()
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
            if self._release_host_memory:
                release_freed_memory()  # the step's freed heap back to the OS (host_memory.py)

            epoch_before = int(state.epoch)
            state.global_step += 1
            state.epoch = self.batches.epoch_progress
            window.add(loss, grad_norm, lr)
            control = self._call("on_step_end")
            if int(state.epoch) > epoch_before:
                control = self._call("on_epoch_end")
                if not control.should_training_stop:
                    control = self._call("on_epoch_begin")
            stop = self._signals.poll()  # every process, every step (the ranks may agree on it)
            if stop:
                logger.warning("%s: saving a checkpoint and stopping", stop)
                control.should_save = control.should_log = control.should_training_stop = True
            if control.should_training_stop:  # a stop logs the steps since the last log
                control.should_log = True
            if control.should_log:
                loss_total = self._window_loss_total(window)
                loss_sum += loss_total
                self.log(self._window_logs(window, loss_total))
                window = LogWindow(state.num_input_tokens_seen)
            self._evaluate_and_save(window)
        return loss_sum + self._window_loss_total(window)

    @functools.cached_property
    def _release_host_memory(self) -> bool:
        """Whether freed heap pages go back to the OS during steps (default: on a CPU)."""
        release = getattr(self.args, "release_host_memory", None)
        return self.device.type == "cpu" if release is None else bool(release)

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
                    # () mean over the batch's targets
                    loss = self.compute_loss(self.local_model, batch)
                if self._release_host_memory:
                    # The forward's temporaries left holes that the backward, which holds
                    # the most, would otherwise add to (host_memory.py).
                    release_freed_memory()
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

    def _clip_grad_norm(self) -> torch.Tensor | None:
        """Clip gradients to `args.max_grad_norm`; return the norm before clipping."""
        if self.args.max_grad_norm <= 0:
            return None
        params = list(self.local_model.parameters())
        norm = self._gradient_norm([p.grad for p in params if p.grad is not None])
        clip_grads_with_norm_(params, self.args.max_grad_norm, norm)
        return norm

    def _evaluate_and_save(self, window: LogWindow) -> None:
        """Honour evaluate/save requests; their time is kept out of tokens/s."""
        start = time.perf_counter()
        if self.control.should_evaluate:
            self.evaluate()
        if self.control.should_save:
            self._save_checkpoint()
        window.paused += time.perf_counter() - start
        self.control.new_step()

    def _window_loss_total(self, window: LogWindow) -> float:
        """The window's summed step losses over all ranks (a collective; every rank calls it)."""
        if window.steps == 0:
            return 0.0
        return float(self._sum_over_replicas(torch.as_tensor(window.loss, dtype=torch.float32)))

    def _window_logs(self, window: LogWindow, loss_total: float) -> dict[str, float]:
        grad_norm = None if window.grad_norm is None else self._reduce_mean(window.grad_norm)
        return window.entry(loss_total, grad_norm, self.state.num_input_tokens_seen)

    # --------------------------------------------------------------- evaluate
    @torch.no_grad()
    def evaluate(
        self, eval_dataset: Dataset | None = None, metric_key_prefix: str = "eval"
    ) -> dict[str, float]:
        """Mean loss over the evaluation batches (at most `args.max_eval_steps` of them).

        Returns:
            `{f"{prefix}_loss": ..., f"{prefix}_runtime": seconds}`, also logged.
        """
        with run_context(self.args):
            return self._evaluate(eval_dataset, metric_key_prefix)

    def _evaluate(self, eval_dataset: Dataset | None, metric_key_prefix: str) -> dict[str, float]:
        self._ensure_setup()
        dataloader = self.get_eval_dataloader(eval_dataset)
        was_training = self.local_model.training
        self.local_model.eval()
        start = time.perf_counter()
        # Summed loss over targets, and targets (or batches, when the targets are unknown).
        total, count, batches = torch.zeros((), device=self.device), 0, 0
        for batch in dataloader:
            if 0 <= self.args.max_eval_steps <= batches:
                break
            targets = self.count_loss_tokens(batch)
            weight = 1 if targets is None else targets
            with self._autocast():
                loss = self.compute_loss(self.local_model, self._prepare_batch(batch)).float()
            total += loss * weight
            count += weight
            batches += 1
        self.local_model.train(was_training)
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

    # ------------------------------------------------------------ checkpoints
    def _save_checkpoint(self) -> str:
        """Write `checkpoint-<step>` atomically from every process, prune old ones, fire `on_save`.

        Each process writes its weights and optimizer state (`_save_model_and_optimizer`),
        its data position and generator states (named by `_rank_file`); the main
        process writes the schedule, the layout (`_checkpoint_layout`) and, last,
        `trainer_state.json`.
        """
        step = self.state.global_step
        path = layout.checkpoint_path(self.args.checkpoints_dir, step)
        if self._last_saved_step == step:
            return path
        if self.args.load_best_model_at_end:
            self._note_best_checkpoint(path)
        with self._checkpoint_directory(path) as temp:
            self._save_model_and_optimizer(temp)
            checkpoint.save_process_state(temp, self._rank_file, self.batches)
            if self.is_main_process:
                layout_ = self._checkpoint_layout()
                checkpoint.save_shared_state(temp, self.lr_scheduler, self.state, layout_)
        if self.is_main_process and self.args.save_total_limit:
            checkpoint.prune_checkpoints(
                self.args.checkpoints_dir,
                self.args.save_total_limit,
                self.state.best_model_checkpoint,
            )
        self._barrier()
        self._last_saved_step = step
        self._call("on_save", checkpoint_dir=path)
        return path

    def _note_best_checkpoint(self, path: str) -> None:
        """Make `path` the best checkpoint when this step's evaluation beats the best so far.

        The metric is `metric_for_best_model` (with `eval_` prefixed, as Hugging
        Face's Trainer reads it) of an evaluation at this step; lower is better
        for a loss, higher for anything else, unless `greater_is_better` says.
        """
        args, state = self.args, self.state
        key = args.metric_for_best_model
        key = key if key.startswith("eval_") else f"eval_{key}"
        value = next(
            (e[key] for e in reversed(state.log_history)
             if key in e and e.get("step") == state.global_step),
            None,
        )  # fmt: skip
        if value is None:
            return
        greater = args.greater_is_better
        if greater is None:
            greater = not key.endswith("loss")
        best = state.best_metric
        if best is None or (value > best if greater else value < best):
            state.best_metric, state.best_model_checkpoint = value, path

    def _load_best_checkpoint(self) -> None:
        """`load_best_model_at_end`: the weights (and optimizer) of the best checkpoint."""
        best = self.state.best_model_checkpoint
        if best is None or not os.path.isdir(best):
            logger.warning("load_best_model_at_end: no evaluated checkpoint to load")
            return
        logger.info(
            "loading the best checkpoint, %s (%s = %s)",
            best, self.args.metric_for_best_model, self.state.best_metric,
        )  # fmt: skip
        self._load_model_and_optimizer(best)

    def _load_checkpoint(self, path: str) -> None:
        """Restore everything `_save_checkpoint` wrote; the generators last, just before the loop.

        The original Forgather's `restore_{optimizer,scheduler,dataset,rng}_state=False`
        keep that part as this run made it: a fresh optimizer (with the config's
        hyperparameters), a schedule from its start, the data from its start,
        the generators as seeded.
        """
        logger.info("resuming from %s", path)
        args = self.args
        checkpoint.check_layout(path, self._checkpoint_layout())
        configured = _group_settings(self.optimizer)
        fresh_optimizer = None
        if not args.restore_optimizer_state:
            fresh_optimizer = copy.deepcopy(self.optimizer.state_dict())
        self._load_model_and_optimizer(path)
        if fresh_optimizer is not None:
            self.optimizer.load_state_dict(fresh_optimizer)
        saved = checkpoint.load_shared_state(
            path, self.lr_scheduler if args.restore_scheduler_state else None, self.state
        )
        if fresh_optimizer is not None and args.restore_scheduler_state:
            # The saved optimizer carried the schedule's current rate; a fresh one starts
            # from the schedule's first.
            for group, lr in zip(
                self.optimizer.param_groups, self.lr_scheduler.get_last_lr(), strict=True
            ):
                group["lr"] = lr
        self._last_saved_step = saved.global_step
        self._reopened_window = self._reopen_log_window()
        self._warn_of_settings_not_applied(path, configured, saved.train_batch_size)
        checkpoint.load_process_state(
            path,
            self._rank_file,
            self.batches if args.restore_dataset_state else None,
            rng=args.restore_rng_state,
        )
        kept = [
            name
            for name, restored in (
                ("optimizer", args.restore_optimizer_state),
                ("lr schedule", args.restore_scheduler_state),
                ("data position", args.restore_dataset_state),
                ("random generators", args.restore_rng_state),
            )
            if not restored
        ]
        if kept:
            logger.info(
                "not restored from the checkpoint (restore_*_state=False): %s", ", ".join(kept)
            )

    def _reopen_log_window(self) -> LogWindow | None:
        """The log window a stop between two logs closed early, taken out of the history and
        reopened, so the resumed run logs what an uninterrupted one would.

        A stop logs the steps since the last log at once (so a run never resumed loses
        none); that entry's mean loss and gradient norm, times its steps, are the sums
        the window had. One process only: with several, each held its own share.
        """
        every = self.args.logging_steps
        step = self.state.global_step
        if self.args.logging_strategy != "steps" or not every or step % every == 0:
            return None
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return None
        history = self.state.log_history
        logged = [e for e in history if "loss" in e and "step" in e]
        if not logged or logged[-1]["step"] != step:
            return None
        flush = logged[-1]
        previous = logged[-2]["step"] if len(logged) > 1 else 0
        window = LogWindow(flush.get("num_input_tokens_seen", self.state.num_input_tokens_seen))
        window.steps = step - previous
        window.loss = flush["loss"] * window.steps
        if "grad_norm" in flush:
            window.grad_norm = torch.tensor(flush["grad_norm"] * window.steps, device=self.device)
        history.remove(flush)
        return window

    def _warn_of_settings_not_applied(self, path: str, configured: list[tuple], batch: int) -> None:
        """Say which of this run's settings the restored state overrides, and what to do.

        A resumed optimizer and schedule keep the checkpoint's learning rate and weight
        decay (as Hugging Face's Trainer's do); a changed value in the config would
        otherwise be dropped without a word. The data position is restored by batches,
        so another batch size moves it (an iterable dataset skips or repeats rows).
        """
        name = os.path.basename(path)
        base_lrs = getattr(self.lr_scheduler, "base_lrs", None)
        restored = _group_settings(self.optimizer)
        if base_lrs is not None:
            restored = [(lr, wd) for lr, (_, wd) in zip(base_lrs, restored, strict=False)]
        for label, index in (("learning rate", 0), ("weight decay", 1)):
            ours = [group[index] for group in configured]
            theirs = [group[index] for group in restored]
            if ours != theirs:
                logger.warning(
                    "resuming from %s: the %s of this run's config (%s) is not used; the "
                    "restored optimizer and schedule continue with the checkpoint's (%s). Set "
                    "restore_optimizer_state=False and restore_scheduler_state=False to start "
                    "them afresh with the new values.",
                    name, label, _values(ours), _values(theirs),
                )  # fmt: skip
        now = self.args.per_device_train_batch_size
        if batch and batch != now and self.args.restore_dataset_state:
            logger.warning(
                "resuming from %s: per_device_train_batch_size is %d, the checkpoint's was %d; "
                "the data position is restored as a count of batches, so an iterable dataset "
                "skips or repeats rows and the epoch count moves.",
                name, now, batch,
            )  # fmt: skip

    # ----------------------------------------------------------- final model
    def save_model(self, output_dir: str | None = None) -> str:
        """Save the weights (and tokenizer) for inference, to `output_dir` or `args.output_dir`.

        Call it on every process: the multi-process trainers gather the weights first.

        Returns:
            The directory written.
        """
        output_dir = output_dir or self.args.output_dir
        self._write_model(output_dir)
        if self.is_main_process and hasattr(self.processing_class, "save_pretrained"):
            self.processing_class.save_pretrained(output_dir)
        self._barrier()
        return output_dir


def check_vocabulary(model: Any, tokenizer: Any) -> None:
    """Refuse a tokenizer whose token ids the model's embedding cannot look up.

    Without this a tokenizer trained for a larger vocabulary fails at the first
    forward with an `IndexError` from the embedding, saying nothing of why.
    """
    if tokenizer is None or not hasattr(tokenizer, "__len__"):
        return
    get_embeddings = getattr(model, "get_input_embeddings", None)
    embedding = get_embeddings() if callable(get_embeddings) else None
    rows = getattr(embedding, "num_embeddings", None)
    if rows is None or rows == 0:  # not an embedding table (or one on the meta device)
        return
    if len(tokenizer) > rows:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's embedding has {rows} "
            "rows, so the larger token ids cannot be looked up: give the model a vocab_size of "
            f"at least {len(tokenizer)}, or use the tokenizer it was made for"
        )


def _group_settings(optimizer) -> list[tuple]:
    """(base learning rate, weight decay) of each parameter group."""
    return [
        (group.get("initial_lr", group.get("lr")), group.get("weight_decay"))
        for group in optimizer.param_groups
    ]


def _values(values: list) -> str:
    return str(values[0]) if len(set(values)) == 1 else str(values)
