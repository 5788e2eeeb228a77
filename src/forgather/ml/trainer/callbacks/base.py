"""The callback protocol: `TrainerCallback`, the dispatcher, and the default flow.

Events and their signature follow Hugging Face (`on_step_end(args, state,
control, **kwargs)`; kwargs carry `model`, `optimizer`, `lr_scheduler`,
`train_dataloader`, `processing_class`, and `logs` for
`on_log`, `metrics` for `on_evaluate`). A callback steers training by setting
flags on `control` (or returning a `TrainerControl`).

The decisions a reader may question: an exception in a callback is not caught —
it ends training with that error, because a half-working logger or control
channel is worse than a loud stop. And `on_log` handlers may add entries to
`logs` (peak memory does), so callbacks run sorted by their `priority`
(lower first, stable): contributors come before writers whatever the order
the user listed them in.
"""

from __future__ import annotations

from typing import Any

from ..state import TrainerControl, TrainerState
from ..training_args import TrainingArguments

__all__ = ["CallbackHandler", "DefaultFlowCallback", "TrainerCallback"]

EVENTS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_step_begin",
    "on_step_end",
    "on_log",
    "on_evaluate",
    "on_save",
)


class TrainerCallback:
    """Base class: override the events you need; each may return a `TrainerControl`."""

    priority: int = 0  # dispatch order, lower first; writers of `logs` use 0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called once after setup (and after restoring a checkpoint), before the first step."""

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called once when training finishes normally or is stopped by a request."""

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called when a new pass over the training data starts."""

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called after the optimizer step that finished a pass over the training data."""

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called before the micro-batches of an optimizer step are drawn."""

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called after each optimizer step; `state.global_step` counts it already."""

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called with `logs` (a dict of floats, including "step") on every log entry."""

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called with `metrics` after an evaluation."""

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl | None:
        """Called after a checkpoint is complete on disk, with `checkpoint_dir`."""


class CallbackHandler:
    """Dispatches events to callbacks in priority order, passing the shared objects.

    Args:
        callbacks: The callbacks, in the order the user gave them.
        objects: Keyword arguments passed to every event (`model`, `optimizer`, ...).
    """

    def __init__(self, callbacks: list[TrainerCallback], **objects: Any) -> None:
        self.callbacks: list[TrainerCallback] = []
        self.objects = dict(objects)
        for callback in callbacks:
            self.add(callback)

    def add(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        """Add a callback (an instance, or a class to instantiate without arguments)."""
        if isinstance(callback, type):
            callback = callback()
        self.callbacks.append(callback)
        self.callbacks.sort(key=lambda cb: getattr(cb, "priority", 0))

    def remove(self, callback: TrainerCallback | type[TrainerCallback]) -> TrainerCallback | None:
        """Remove and return a callback given as an instance or by class; None if absent."""
        for cb in self.callbacks:
            if cb is callback or (isinstance(callback, type) and isinstance(cb, callback)):
                self.callbacks.remove(cb)
                return cb
        return None

    def call(
        self,
        event: str,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        **kwargs: Any,
    ) -> TrainerControl:
        """Run `event` on every callback; return the (possibly replaced) control."""
        for callback in self.callbacks:
            handler = getattr(callback, event, None)
            if handler is None:
                continue
            result = handler(args, state, control, **self.objects, **kwargs)
            if isinstance(result, TrainerControl):
                control = result
        return control


class DefaultFlowCallback(TrainerCallback):
    """Turns the *_strategy / *_steps arguments into log, evaluate, save and stop requests."""

    priority = -100  # before any user callback, which may then override the flags

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if args.logging_strategy == "steps" and (
            step % state.logging_steps == 0 or (step == 1 and args.logging_first_step)
        ):
            control.should_log = True
        if (
            args.eval_strategy == "steps"
            and step % state.eval_steps == 0
            and step >= getattr(args, "eval_delay", 0)
        ):
            control.should_evaluate = True
        if args.save_strategy == "steps" and step % state.save_steps == 0:
            control.should_save = True
        if step >= state.max_steps:
            control.should_training_stop = True
            # Like HF: with any save strategy the final state is always checkpointed.
            control.should_log |= args.logging_strategy != "no"
            control.should_save |= args.save_strategy != "no"
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        control.should_log |= args.logging_strategy == "epoch"
        control.should_evaluate |= args.eval_strategy == "epoch"
        control.should_save |= args.save_strategy == "epoch"
        return control
