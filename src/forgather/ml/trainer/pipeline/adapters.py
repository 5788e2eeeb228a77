"""`PipelineTrainer`, its arguments and splitters with the original Forgather's signatures.

See the package docstring. The decision a reader may question: a splitter is
data (`ModelSplitter`: balance and split points) rather than a function that
cuts the model, because our `PipelineTrainer` cuts the model itself, the same
way on every rank, from exactly those two settings.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..parallel.pipeline_trainer import PipelineTrainer as _PipelineTrainer
from ..training_args import TrainingArguments

__all__ = [
    "ModelSplitter",
    "PipelineTrainer",
    "PipelineTrainingArguments",
    "create_automatic_splitter",
    "create_manual_causal_lm_splitter",
    "insert_activation_checkpoints",
]


@dataclass(kw_only=True)
class PipelineTrainingArguments(TrainingArguments):
    """`TrainingArguments` plus the original's pipeline settings.

    `n_microbatches`: chunks each batch is split into; `stages_per_rank`:
    stages on each rank for multi-stage schedules (`is_multistage`);
    `pp_stage_type`: "loop" or "v" (the schedule decides the placement here;
    a mismatch is an error at setup). The `debug_*` flags are accepted.
    """

    n_microbatches: int = 4
    stages_per_rank: int = 1
    pp_stage_type: str = "loop"
    is_multistage: bool = False
    debug_pipeline: bool = False
    debug_split_model: bool = False
    debug_model_params: bool = False
    debug_model_init: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pp_stage_type not in ("loop", "v"):
            raise ValueError(f"pp_stage_type must be 'loop' or 'v', got {self.pp_stage_type!r}")


@dataclass(frozen=True)
class ModelSplitter:
    """How to cut a causal LM into stages: balanced by layers, or at named layers."""

    split_points: tuple[str, ...] | None = None  # layers that begin a stage
    num_layers: int | None = None  # checked against the model when given

    def check(self, model: nn.Module) -> None:
        """Raise if the model's layer count differs from the one the config declared."""
        if self.num_layers is None:
            return
        layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
        if layers is not None and layers != self.num_layers:
            raise ValueError(
                f"the splitter expects {self.num_layers} layers; the model has {layers}"
            )


def create_manual_causal_lm_splitter(
    num_layers: int | None = None, input_weight: int = 1, output_weight: int = 1
) -> ModelSplitter:
    """Split a causal LM into stages of (nearly) equal layer counts.

    Args:
        num_layers: The model's layer count (checked); None: read from the model.
        input_weight, output_weight: The original's weights of the embedding and
            head; only 1 is supported (stages are balanced by layer count; use
            `balance="parameters"` on `forgather.ml.trainer.PipelineTrainer` to
            weigh them by size).
    """
    if (input_weight, output_weight) != (1, 1):
        raise ValueError(
            "create_manual_causal_lm_splitter: input_weight/output_weight other than 1 are not "
            "supported; use forgather.ml.trainer:PipelineTrainer with balance='parameters'"
        )
    return ModelSplitter(num_layers=num_layers)


def create_automatic_splitter(split_spec: dict[str, Any]) -> ModelSplitter:
    """Split where `split_spec` says: `{"layer_stack.layers.2": "beginning", ...}`.

    A key's trailing ``layers.<i>`` names the layer (whatever the original
    module path before it); "beginning" starts a stage at that layer, "end"
    after it.
    """
    points = []
    for name, where in split_spec.items():
        match = re.search(r"layers\.(\d+)$", str(name))
        if match is None:
            raise ValueError(f"split point {name!r} does not name a layer ('...layers.<i>')")
        index = int(match.group(1))
        kind = str(getattr(where, "name", where)).lower()
        if kind not in ("beginning", "end"):
            raise ValueError(f"split point {name!r}: {where!r} is not 'beginning' or 'end'")
        points.append(index if kind == "beginning" else index + 1)
    return ModelSplitter(split_points=tuple(f"layers.{i}" for i in sorted(points)))


def insert_activation_checkpoints(rank: int, module: nn.Module, targets: str) -> None:
    """Recompute the activations of the submodules whose name matches `targets` in backward.

    Args:
        rank: This process's rank (unused).
        module: The model.
        targets: A regular expression; it must match a whole name or a dotted
            suffix of one (``'^layers\\.(\\d+)$'`` matches ``model.layers.0``).
    """
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
        CheckpointImpl,
        apply_activation_checkpointing,
        checkpoint_wrapper,
    )

    pattern = re.compile(targets)
    chosen = set()
    for name, sub in module.named_modules():
        parts = name.split(".")
        if name and any(pattern.fullmatch(".".join(parts[i:])) for i in range(len(parts))):
            chosen.add(id(sub))
    # torch's wrapper keeps the state-dict names unchanged (checkpoints stay compatible).
    apply_activation_checkpointing(
        module,
        checkpoint_wrapper_fn=lambda m: checkpoint_wrapper(
            m, checkpoint_impl=CheckpointImpl.NO_REENTRANT
        ),
        check_fn=lambda m: id(m) in chosen,
    )


def _schedule_name(factory: Any) -> str:
    target = getattr(factory, "func", factory)
    name = getattr(target, "__name__", None)
    if name is None:
        raise TypeError(f"pipe_schedule_factory must be a torch schedule class, not {factory!r}")
    return name.removeprefix("Schedule")


class PipelineTrainer(_PipelineTrainer):
    """Our `PipelineTrainer` constructed with the original's arguments.

    Args:
        args: `PipelineTrainingArguments`.
        model_splitter: From `create_manual_causal_lm_splitter` or `create_automatic_splitter`.
        pipe_schedule_factory: A torch schedule class (or a partial of one),
            e.g. `torch.distributed.pipelining.Schedule1F1B`; its options are not used.
        **kwargs: The trainer's other arguments (`model_init`, `data_collator`, ...).
    """

    def __init__(
        self,
        *,
        args: PipelineTrainingArguments,
        model_splitter: ModelSplitter | None = None,
        pipe_schedule_factory: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, PipelineTrainingArguments):
            raise TypeError("PipelineTrainer needs PipelineTrainingArguments")
        if model_splitter is not None and not isinstance(model_splitter, ModelSplitter):
            raise TypeError(
                "model_splitter must come from create_manual_causal_lm_splitter or "
                f"create_automatic_splitter, not {model_splitter!r}"
            )
        splitter = model_splitter or ModelSplitter()
        schedule = (
            "GPipe" if pipe_schedule_factory is None else _schedule_name(pipe_schedule_factory)
        )
        super().__init__(
            args=args,
            schedule=schedule,
            n_microbatches=args.n_microbatches,
            stages_per_rank=args.stages_per_rank if args.is_multistage else None,
            split_points=list(splitter.split_points) if splitter.split_points else None,
            **kwargs,
        )
        self.model_splitter = splitter

    def _setup(self) -> nn.Module:
        self.model_splitter.check(self.model)
        return super()._setup()
