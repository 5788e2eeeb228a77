"""The original Forgather's callbacks, by its names and arguments, on our callbacks.

Its configs list them in ``trainer_callbacks``:

- `InfoCallback(verbose)`: prints a summary of the run when training starts.
- `JsonLogger(**experiment_info)`: our `JsonLogCallback` (``<logging_dir>/trainer_logs.json``,
  a JSON array); every entry also has the original's ``timestamp`` (UTC seconds)
  and ``global_step``.
- `TBLogger(summary_writer, scalars=None, **experiment_info)`: scalars under
  the original's names (``train-loss``, ``learning-rate``, ``grad-norm``,
  ``eval-loss``, ``eval-perplexity``) into the given `SummaryWriter`, the
  experiment info and run summary as text.
- `PeakMemory(summary_writer, show_details, do_log, ...)`: our `PeakMemoryCallback`
  (peak memory in every log entry), plus the original's optional printing and
  TensorBoard scalar.
- `TextgenCallback(summary_writer, prompts, generation_config, generation_steps,
  max_new_tokens)`: our `TextGenerationCallback`, the samples also written to
  TensorBoard as ``eval-text``.

Given to a trainer, `JsonLogger`, `TBLogger` and `PeakMemory` replace the
trainer's default JSON, TensorBoard and memory callbacks (they are subclasses),
so nothing is logged twice.

The decision a reader may question: `TBLogger` does not close the writer it
was given at the end of training. The config shares one writer between
callbacks (the text samples, memory), and a run may evaluate after training.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch

from .json_log import JsonLogCallback
from .peak_memory import PeakMemoryCallback
from .tensorboard import TensorBoardCallback
from .text_generation import TextGenerationCallback

__all__ = ["InfoCallback", "JsonLogger", "PeakMemory", "TBLogger", "TextgenCallback"]


def _perplexity(value: float, metrics: dict[str, Any]) -> float:
    try:
        return math.exp(value)
    except OverflowError:
        return float("inf")


_DEFAULT_SCALARS: list[tuple] = [
    ("loss", "train-loss"),
    ("learning_rate", "learning-rate"),
    ("grad_norm", "grad-norm"),
    ("max_grad_norm", "grad-norm[max]"),
    ("eval_accuracy", "eval-accuracy"),
    ("eval_loss", "eval-loss"),
    ("eval_loss", "eval-perplexity", _perplexity),
]


def _markdown(mapping: dict[str, Any]) -> str:
    """A mapping as a fenced block (TensorBoard renders text as Markdown)."""
    width = max((len(str(k)) for k in mapping), default=0)
    lines = [f"{str(k):<{width}} : {v}" for k, v in mapping.items()]
    return "```\n" + "\n".join(lines) + "\n```"


def _run_summary(args: Any, state: Any, model: Any) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "max_steps": state.max_steps,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "output_dir": args.output_dir,
        "logging_dir": args.logging_dir,
    }
    if model is not None:
        params = list(model.parameters())
        summary["model"] = type(model).__name__
        summary["parameters"] = f"{sum(p.numel() for p in params) / 1e6:.3f}M"
        summary["trainable_parameters"] = (
            f"{sum(p.numel() for p in params if p.requires_grad) / 1e6:.3f}M"
        )
        if params:
            summary["device"] = str(params[0].device)
            summary["dtype"] = str(params[0].dtype)
    return summary


class InfoCallback:
    """Prints a summary of the run (model size, steps, directories) when training starts.

    Args:
        verbose: Also print every training argument.
    """

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        summary = _run_summary(args, state, model)
        if self.verbose:
            summary.update(args.to_dict())
        print(_markdown(summary).strip("`\n"), file=sys.stdout, flush=True)


class JsonLogger(JsonLogCallback):
    """`JsonLogCallback` whose entries also carry ``timestamp`` and ``global_step``.

    Args:
        **kwargs: The experiment's description (name, date, config...); kept in
            `self.kwargs`, as the original did, and not written to the log.
    """

    priority = 1  # after callbacks that add to `logs`

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None:
            logs.setdefault("timestamp", time.time())
            logs.setdefault("global_step", state.global_step)
        return super().on_log(args, state, control, logs=logs, **kwargs)


class TBLogger(TensorBoardCallback):
    """Scalars under the original's names into a given TensorBoard writer.

    Args:
        summary_writer: A `torch.utils.tensorboard.SummaryWriter` (shared, not closed here).
        scalars: `(log key, tag)` or `(log key, tag, fn(value, logs))` tuples;
            None: loss, learning rate, gradient norm, evaluation loss and perplexity.
        **kwargs: The experiment's description, written once as text ("experiment").
    """

    priority = 1

    def __init__(
        self, summary_writer: Any, scalars: Sequence[tuple] | None = None, **kwargs: Any
    ) -> None:
        super().__init__()
        self.writer = summary_writer
        self.scalars = list(scalars) if scalars else list(_DEFAULT_SCALARS)
        self.kwargs = kwargs

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if self.kwargs:
            self.writer.add_text("experiment", _markdown(self.kwargs))
        self.writer.add_text("training_info", _markdown(_run_summary(args, state, model)))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        for scalar in self.scalars:
            key, tag = scalar[0], scalar[1]
            value = logs.get(key)
            if not value:  # absent (or 0, as the original skipped it)
                continue
            if len(scalar) > 2:
                value = scalar[2](value, logs)
                if value is None:
                    continue
            self.writer.add_scalar(tag, value, global_step=state.global_step)
        self.writer.flush()

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero and state.log_history:
            self.writer.add_text("train_results", _markdown(state.log_history[-1]))
            self.writer.flush()


class PeakMemory(PeakMemoryCallback):
    """`PeakMemoryCallback`, with the original's printing and TensorBoard options.

    Args:
        summary_writer: Also write ``peak_cuda_mib`` (or ``peak_rss_mib``) as a scalar.
        show_details: Print `torch.cuda.memory_summary()` with each log entry (CUDA).
        do_log: Print the peak memory with each log entry.
        enable_memory_snapshot: The original's CUDA memory-history recording;
            not supported (a clear error when True).
        file_prefix: The snapshot's file name prefix (unused).
    """

    def __init__(
        self,
        summary_writer: Any = None,
        show_details: bool = False,
        do_log: bool = False,
        enable_memory_snapshot: bool = False,
        file_prefix: str = "memory_snapshot",
    ) -> None:
        if enable_memory_snapshot:
            raise ValueError(
                "PeakMemory(enable_memory_snapshot=True) is not supported; record a snapshot "
                "with torch.cuda.memory._record_memory_history in your own callback"
            )
        super().__init__()
        self.summary_writer = summary_writer
        self.show_details = show_details
        self.do_log = do_log
        self.file_prefix = file_prefix

    def on_log(self, args, state, control, logs=None, model=None, **kwargs):
        super().on_log(args, state, control, logs=logs, model=model, **kwargs)
        if logs is None or not state.is_world_process_zero:
            return
        peak = self.peak_cuda_mib if self.peak_cuda_mib is not None else self.peak_rss_mib
        if peak is None:
            return
        if self.do_log:
            print(f"step {state.global_step}: peak memory {peak:.1f} MiB", flush=True)
        if self.show_details and torch.cuda.is_available():
            print(torch.cuda.memory_summary(), flush=True)
        if self.summary_writer is not None:
            self.summary_writer.add_scalar("peak-memory-mib", peak, global_step=state.global_step)


# generate() options the original's generation_config may hold; others are reported.
_GENERATION_KEYS = {
    "top_p",
    "repetition_penalty",
    "no_repeat_ngram_size",
    "num_beams",
    "min_new_tokens",
    "typical_p",
}


class TextgenCallback(TextGenerationCallback):
    """`TextGenerationCallback` with the original's arguments; samples also go to TensorBoard.

    Args:
        summary_writer: Where the samples are written as text ("eval-text").
        prompts: Texts to continue.
        generation_config: A dict of `generate()` options (`do_sample`,
            `temperature`, `top_k`, `top_p`, `repetition_penalty`, ...); None:
            the original's defaults (sampling, top-k 20, top-p 0.9, temperature 0.7).
        generation_steps: Generate every this many steps; None: after each evaluation.
        max_new_tokens: Length of each continuation.
    """

    def __init__(
        self,
        summary_writer: Any,
        prompts: list[str],
        generation_config: dict[str, Any] | None = None,
        generation_steps: int | None = None,
        max_new_tokens: int = 200,
    ) -> None:
        config = dict(generation_config or {})
        if not config:
            config = {"do_sample": True, "top_k": 20, "top_p": 0.9, "temperature": 0.7}
            config["repetition_penalty"] = 1.15
        config.pop("identity", None)  # the config idiom's name for the dict, not an option
        super().__init__(
            prompts,
            generation_steps=generation_steps,
            max_new_tokens=max_new_tokens,
            do_sample=bool(config.pop("do_sample", True)),
            temperature=float(config.pop("temperature", 1.0)),
            top_k=config.pop("top_k", None),
        )
        unknown = sorted(set(config) - _GENERATION_KEYS)
        if unknown:
            logging.getLogger(__name__).warning(
                "TextgenCallback: %s are not generation options; ignored", unknown
            )
        self.generation_kwargs = {k: v for k, v in config.items() if k in _GENERATION_KEYS}
        self.summary_writer = summary_writer

    def _generate(self, args, state, model, tokenizer) -> None:
        before = len(self.samples)
        super()._generate(args, state, model, tokenizer)
        new = self.samples[before:]
        if new and self.summary_writer is not None:
            text = "\n\n---\n\n".join(f"{s['prompt']} [START] {s['text']}" for s in new)
            self.summary_writer.add_text("eval-text", text, global_step=state.global_step)
            self.summary_writer.flush()
