"""`PipelineTrainer`: the training loop with the model split into pipeline stages.

The job's ranks form a (data-parallel x pipeline) grid: `pipeline_parallel_size`
ranks hold the stages of one copy of the model, and `world / pipeline_parallel_size`
such copies (replicas) read different data and combine their gradients. With
4 processes and `pipeline_parallel_size=2`: 2 stages x 2 replicas.

Every replica starts from the first replica's weights (each process builds
its own copy of the model; `broadcast_module` copies them over).

One optimizer step, per gradient-accumulation micro-batch: every rank of a
pipeline reads the same batch (its replica's share); the schedule
(`torch.distributed.pipelining`) splits it into `n_microbatches` chunks, feeds
token ids to the first stage and `position_ids` (and any `attention_mask`)
to every stage, and computes the loss on the last stage. Then the replicas
sum their gradients, the gradient norm is reduced over the pipeline,
and each rank steps the optimizer of its own stages. Evaluation runs the same
pipeline forward only.

Checkpoints hold each stage's weights under the unsplit model's names
(`stage-<i>/model.safetensors`) and each pipeline rank's optimizer
(`optimizer-pp<r>.pt`); `merge_checkpoints=True` also writes the merged
`model.safetensors`, and `save_model()` writes one Hugging Face model directory.

The decision a reader may question: the loss of each chunk is its summed
token cross-entropy divided by the number of target tokens in the whole
step (every micro-batch of every replica, see `step_tokens`), with the
schedule's own `scale_grads` off. Summed over chunks, micro-batches and
replicas this is exactly the unsplit model's mean loss over the global batch,
however unevenly the targets fall among them, so a pipelined run reproduces
an unsplit run's losses and gradients.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.pipelining import PipelineStage
from torch.utils.data import Dataset, Sampler

from forgather.ml import checkpoint_layout as layout

from .. import checkpoint as ckpt
from ..activation_checkpointing import enable_hf_activation_checkpointing
from ..callbacks import TrainerCallback
from ..optimization import OptimizerFactory, SchedulerFactory
from ..step_tokens import IGNORE_INDEX, count_target_tokens
from ..training_args import TrainingArguments
from .distributed import (
    all_reduce_sum,
    broadcast_module,
    check_joined,
    destroy_process_group_at_exit,
    init_process_group,
    launched_world_size,
)
from .multiprocess import MultiProcessTrainer
from .pipeline_checkpoint import merge_pipeline_checkpoint, stage_dir
from .pipeline_schedules import choose_schedule, forward_only
from .pipeline_split import (
    build_stage,
    check_no_cross_stage_ties,
    decoder_layout,
    merge_stage_weights,
    plan_stages,
)
from .sharded_state import save_full_model

__all__ = ["PipelineTrainer"]

logger = logging.getLogger(__name__)

_BATCH_KEYS = {"input_ids", "labels", "position_ids", "attention_mask"}


def _is_causal_loss(fn: Any) -> bool:
    """`forgather.ml.loss.CausalLoss` (or its chunked form): the loss the stages compute anyway."""
    return type(fn).__name__ in ("CausalLoss", "ChunkedCausalLoss")


class _ChunkLoss:
    """Summed next-token cross-entropy of one chunk, times `scale` (set per batch)."""

    def __init__(self) -> None:
        self.scale = 1.0  # 1 / target tokens of the step (training) or of the batch (evaluation)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        vocab = logits.shape[-1]
        total = F.cross_entropy(
            logits[:, :-1].float().reshape(-1, vocab),  # (B*(T-1), V) predicting t+1 from t
            labels[:, 1:].reshape(-1),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )
        return total * self.scale


class PipelineTrainer(MultiProcessTrainer):
    """Pipeline-parallel trainer (with data-parallel replicas); see the module docstring.

    Every batch must have one shape (the stages' buffers are sized from the
    first): use packed data, and the final smaller batch of an epoch or of the
    evaluation is dropped.

    The arguments before `pipeline_parallel_size` are `BaseTrainer`'s (see
    `TrainerParts`); the options are keyword-only. The model must be a Hugging
    Face causal LM with its layers in one `nn.ModuleList` (every generated
    model is). After setup `local_model` holds this rank's stages (an
    `nn.ModuleList` of `StageModule`) and `model` is None, so that the unsplit
    copy can be freed.

    Args:
        pipeline_parallel_size: Ranks per pipeline; None: all ranks (one replica).
        schedule: A name from `pipeline_schedules.SCHEDULES`, e.g. "1F1B".
        n_microbatches: Chunks each batch is split into; None: the number of
            stages. `per_device_train_batch_size` (and the eval batch size)
            must be a multiple.
        stages_per_rank: For the looped schedules (default 2).
        balance: "layers" or "parameters": how stages are sized (see `plan_stages`).
        split_points: Layers that begin a stage, e.g. ["model.layers.2"]; overrides `balance`.
        merge_checkpoints: Also write the merged `model.safetensors` into every checkpoint.
        timeout_seconds: How long a collective waits for a missing peer.
    """

    drop_incomplete_batches = True  # stage buffers have one shape

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
        optimizer_cls_and_kwargs: tuple[type, dict[str, Any]] | None = None,
        *,
        pipeline_parallel_size: int | None = None,
        schedule: str = "1F1B",
        n_microbatches: int | None = None,
        stages_per_rank: int | None = None,
        balance: str = "layers",
        split_points: list[str] | None = None,
        merge_checkpoints: bool = False,
        timeout_seconds: float = 600.0,
    ) -> None:
        if args is not None and args.torch_compile is True:  # "auto": not compiled
            raise ValueError("PipelineTrainer does not compile stages; set torch_compile=False")
        # The last stage computes next-token cross-entropy itself (`_ChunkLoss`).
        if compute_loss_func is not None and not _is_causal_loss(compute_loss_func):
            raise ValueError(
                f"PipelineTrainer computes causal cross-entropy on its last stage; "
                f"compute_loss_func={compute_loss_func!r} cannot replace it (pass CausalLoss or None)"
            )
        if fused_loss_factory is not None:
            logger.info(
                "PipelineTrainer: fused_loss_factory unused; the last stage computes logits"
            )
            fused_loss_factory = None
        compute_loss_func = None
        super().__init__(
            model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
            data_collator=data_collator, processing_class=processing_class, callbacks=callbacks,
            optimizer_factory=optimizer_factory, lr_scheduler_factory=lr_scheduler_factory,
            train_sampler=train_sampler, model_init=model_init,
            compute_loss_func=compute_loss_func, fused_loss_factory=fused_loss_factory,
            enable_activation_checkpoint_fn=enable_activation_checkpoint_fn,
            distributed_env=distributed_env, optimizer_cls_and_kwargs=optimizer_cls_and_kwargs,
        )  # fmt: skip
        self.pipeline_parallel_size = pipeline_parallel_size
        self.schedule_name = schedule
        self.n_microbatches = n_microbatches
        self.stages_per_rank = stages_per_rank
        self.balance = balance
        self.split_points = list(split_points) if split_points is not None else None
        self.merge_checkpoints = merge_checkpoints
        self.timeout_seconds = timeout_seconds
        self._loss = _ChunkLoss()
        self._shapes: dict[bool, tuple[int, ...]] = {}  # batch shape seen, for training / eval

    # ------------------------------------------------------------------ setup
    def _setup(self) -> nn.Module:
        use_cpu = self.args.use_cpu or not torch.cuda.is_available()
        init_process_group(use_cpu, self.timeout_seconds)
        if not dist.is_initialized():
            raise RuntimeError(
                "PipelineTrainer runs under torchrun: `forgather -t CONFIG train --nproc N`"
            )
        check_joined(launched_world_size(), self.world_size)
        destroy_process_group_at_exit()
        self.device = (
            torch.device("cpu") if use_cpu else torch.device("cuda", torch.cuda.current_device())
        )
        pp = self.pipeline_parallel_size or self.world_size
        if self.world_size % pp:
            raise ValueError(f"{self.world_size} processes do not split into pipelines of {pp}")
        dp = self.world_size // pp
        mesh = init_device_mesh(self.device.type, (dp, pp), mesh_dim_names=("dp", "pp"))
        self.pp_group, self.dp_group = mesh["pp"].get_group(), mesh["dp"].get_group()
        self.pp_rank, self.dp_rank = mesh["pp"].get_local_rank(), mesh["dp"].get_local_rank()
        self.pp_size, self.dp_size = pp, dp

        choice = choose_schedule(self.schedule_name, pp, self.stages_per_rank)
        full_model = self.model
        self.layout = decoder_layout(full_model)
        self.plan = plan_stages(full_model, choice.num_stages, self.balance, self.split_points)
        check_no_cross_stage_ties(full_model, self.layout, self.plan)
        self.rank_stages = choice.rank_stages
        self._v_shaped = choice.v_shaped
        self.stage_indices = choice.rank_stages[self.pp_rank]
        several = len(self.stage_indices) > 1
        modules = [
            build_stage(full_model, self.layout, self.plan, s, copy_model=several).to(self.device)
            for s in self.stage_indices
        ]
        for module in modules:  # replicas of a stage: the first replica's weights
            broadcast_module(module, self.dp_group)
        self.has_first_stage = 0 in self.stage_indices
        self.has_last_stage = choice.num_stages - 1 in self.stage_indices

        self.num_microbatches = self.n_microbatches or choice.num_stages
        stages = [
            PipelineStage(module, s, choice.num_stages, self.device, group=self.pp_group)
            for s, module in zip(self.stage_indices, modules, strict=True)
        ]
        self.schedule = choice.schedule_class(
            stages[0] if choice.single_stage else stages, self.num_microbatches,
            loss_fn=self._loss, scale_grads=False,
        )  # fmt: skip
        self.model = None  # only this rank's stages stay: the unsplit copy can be freed
        return nn.ModuleList(modules)  # this rank's stages: what the optimizer steps

    def data_parallel(self) -> tuple[int, int]:
        """Replicas read different data; the stages of one pipeline read the same."""
        self._ensure_setup()
        return self.dp_rank, self.dp_size

    def _callback_model(self) -> nn.Module | None:
        return self.local_model  # this rank's stages: no generate(), so sample callbacks skip it

    # ------------------------------------------------------------------- step
    def _sum_over_replicas(self, value: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(value, self.dp_group)  # the stages of a replica read the same data

    def count_loss_tokens(self, batch: Any) -> int | None:
        """Targets of `batch`: its `labels`, or its `input_ids` when it has none (as the stages)."""
        if isinstance(batch, dict) and "labels" not in batch and "input_ids" in batch:
            return count_target_tokens({"labels": batch["input_ids"]})
        return count_target_tokens(batch)

    def _train_step(self) -> torch.Tensor:
        """One optimizer step's forward and backward through the pipeline.

        Returns:
            () This replica's share of the step loss (the same on each of its stages).
        """
        batches, tokens = self._next_step_batches()
        scale = 1.0 / max(tokens.total_targets, 1)
        local = torch.zeros((), device=self.device)  # summed losses the last stage saw
        for batch in batches:
            local += self._run_pipeline(self._prepare_batch(batch), scale, train=True)
        self._sum_gradients_over_replicas()
        return all_reduce_sum(local, self.pp_group)

    def compute_loss(self, model: nn.Module, inputs: Any) -> torch.Tensor:
        """Evaluation loss of one batch, forward through the pipeline (on every rank)."""
        scale = 1.0 / max(self.count_loss_tokens(inputs) or 0, 1)
        return all_reduce_sum(self._run_pipeline(inputs, scale, train=False), self.pp_group)

    def _run_pipeline(
        self, batch: dict[str, torch.Tensor], scale: float, train: bool
    ) -> torch.Tensor:
        """Run one batch; the last stage returns its summed token loss times `scale`, others 0."""
        input_ids, labels, kwargs = self._split_batch(batch, train)
        self._loss.scale = scale
        args = (input_ids,) if self.has_first_stage else ()
        losses: list[torch.Tensor] = []
        with self._autocast():
            if train:
                self.schedule.step(
                    *args, target=labels, losses=losses, return_outputs=False, **kwargs
                )
            else:
                with forward_only(self.schedule) if self._v_shaped else contextlib.nullcontext():
                    self.schedule.eval(*args, target=labels, losses=losses, **kwargs)
        if not self.has_last_stage:
            return torch.zeros((), device=self.device)
        return torch.stack(losses).sum().detach().float()

    def _split_batch(
        self, batch: dict[str, torch.Tensor], train: bool
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        unknown = set(batch) - _BATCH_KEYS
        if unknown:
            raise ValueError(
                f"PipelineTrainer passes {sorted(_BATCH_KEYS)} to the stages, not {sorted(unknown)}"
            )
        input_ids = batch["input_ids"]  # (B, T)
        labels = batch.get("labels", input_ids)
        rows, length = input_ids.shape
        if rows % self.num_microbatches:
            raise ValueError(
                f"a batch of {rows} rows does not split into {self.num_microbatches} microbatches; "
                "make the per-device batch sizes multiples of n_microbatches"
            )
        # Stage buffers are sized from the first batch: every batch must have that shape.
        expected = self._shapes.setdefault(train, tuple(input_ids.shape))
        if tuple(input_ids.shape) != expected:
            raise ValueError(
                f"pipeline batches must all have one shape; got {tuple(input_ids.shape)} after "
                f"{expected}. Pack sequences, or pad to a fixed length, and drop incomplete batches"
            )
        positions = batch.get("position_ids")
        if positions is None:
            positions = torch.arange(length, device=input_ids.device)
        kwargs = {"position_ids": positions.expand(rows, length)}  # every stage needs them
        if "attention_mask" in batch:
            kwargs["attention_mask"] = batch["attention_mask"]
        return input_ids, labels, kwargs

    def _sum_gradients_over_replicas(self) -> None:
        """Sum each stage's gradients over the data-parallel replicas (one flat all-reduce).

        A sum, not a mean: each replica's loss is already divided by the whole step's targets.
        """
        if self.dp_size == 1:
            return
        grads = [p.grad for p in self.local_model.parameters() if p.grad is not None]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, group=self.dp_group)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def _gradient_norm(self, grads: list[torch.Tensor]) -> torch.Tensor:
        local = sum(
            (g.detach().float().pow(2).sum() for g in grads), torch.zeros((), device=self.device)
        )
        return all_reduce_sum(local, self.pp_group).sqrt()  # over every stage of the pipeline

    # ------------------------------------------------------------ checkpoints
    def _checkpoint_layout(self) -> dict[str, object]:
        return {
            **super()._checkpoint_layout(),
            "pipeline_parallel_size": self.pp_size,
            "stage_layers": [[r.start, r.stop] for r in self.plan],
            "rank_stages": [list(s) for s in self.rank_stages],
        }

    def _save_model_and_optimizer(self, directory: str) -> None:
        if self.dp_rank == 0:  # replicas hold the same weights and optimizer state
            for s, module in zip(self.stage_indices, self.local_model, strict=True):
                os.makedirs(stage_dir(directory, s), exist_ok=True)
                ckpt.save_model_weights(
                    module.lm, os.path.join(stage_dir(directory, s), layout.MODEL_FILE)
                )
            torch.save(
                self.optimizer.state_dict(),
                os.path.join(directory, f"optimizer-pp{self.pp_rank}.pt"),
            )
        if self.merge_checkpoints:
            self._barrier()  # every stage file is written
            if self.is_main_process:
                merge_pipeline_checkpoint(directory)

    def _load_model_and_optimizer(self, directory: str) -> None:
        for s, module in zip(self.stage_indices, self.local_model, strict=True):
            ckpt.load_model_weights(
                module.lm, os.path.join(stage_dir(directory, s), layout.MODEL_FILE)
            )
        state = torch.load(
            os.path.join(directory, f"optimizer-pp{self.pp_rank}.pt"),
            map_location="cpu",
            weights_only=True,
        )
        self.optimizer.load_state_dict(state)

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """Every stage's weights merged on rank 0 (`{}` elsewhere); call on every rank."""
        self._ensure_setup()
        mine = {}
        if self.dp_rank == 0:
            for module in self.local_model:
                mine.update({k: v.detach().cpu() for k, v in module.lm.state_dict().items()})
        gathered: list[Any] | None = [None] * self.world_size if self.is_main_process else None
        dist.gather_object(mine, gathered, dst=0)
        return merge_stage_weights(gathered) if self.is_main_process else {}

    def _write_model(self, output_dir: str) -> None:
        """The stages' weights merged on rank 0, as one Hugging Face model directory."""
        weights = self.full_state_dict()
        if self.is_main_process:
            save_full_model(self.local_model[0].lm, weights, output_dir)
