"""`MultiProcessTrainer`: what `AccelTrainer` and `PipelineTrainer` add to the loop alike.

Every rank runs `BaseTrainer`'s loop; this class makes the ranks agree:

- data: each data-parallel rank reads its own share of every global batch
  (`RankShardSampler`); evaluation is split the same way;
- the step loss is the mean over the target tokens of every rank, token
  counts are totals (`step_tokens`); other logged values are averaged over
  the ranks, and only rank 0 writes logs;
- checkpoints: every rank writes into one directory that appears atomically
  (`collective_directory`); rank 0 writes the shared files, each rank its own
  RNG and data position (`rng_state-<rank>.pt`, `dataloader_state-<rank>.pt`),
  and the subclass the model and optimizer (`_save_model_and_optimizer`).
  `distributed.json` records the layout; resuming under another layout is an
  error, not a silent mix-up;
- SIGTERM/SIGINT: a signal seen by any rank stops all of them at the same step.

The decision a reader may question: the signal agreement replaces the loop's
`_signals` object through a property rather than changing `BaseTrainer`. A
signal reaching the ranks a few milliseconds apart would otherwise make one
rank checkpoint (collectives) while another starts the next step (other
collectives), and the job would hang instead of stopping cleanly.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from forgather.ml import checkpoint_layout as layout

from .. import checkpoint as ckpt
from ..base_trainer import BaseTrainer, OptimizerFactory, SchedulerFactory
from ..batch_stream import resumable_dataloader
from ..callbacks import TrainerCallback
from ..rng import get_rng_state, set_rng_state
from ..sampler import ResumableShuffleSampler
from ..state import TrainerControl, TrainerState, TrainOutput
from ..stop_signals import StopSignals
from ..training_args import TrainingArguments
from .distributed import RankShardSampler, all_reduce_sum, collective_directory, eval_shard_sampler

__all__ = ["MultiProcessTrainer"]

logger = logging.getLogger(__name__)

class MultiProcessTrainer(BaseTrainer):
    """The loop on every rank of a `torchrun` job (see the module docstring).

    Attributes:
        drop_incomplete_batches: Drop the last, smaller batch of every epoch and
            of the evaluation (a subclass whose batches must have one shape sets it).

    Args:
        timeout_seconds: How long a collective waits for a missing peer before
            the job fails (a hung or crashed rank); default 10 minutes.
        Others: as `BaseTrainer`.
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
        timeout_seconds: float = 600.0,
        model_init: Callable[[], nn.Module] | None = None,
    ) -> None:
        super().__init__(
            model, args, train_dataset, eval_dataset, data_collator, processing_class,
            callbacks, optimizer_factory, lr_scheduler_factory, train_sampler, model_init,
        )  # fmt: skip
        self.timeout_seconds = timeout_seconds
        self.add_callback(_StopAgreement(self))

    drop_incomplete_batches: bool = False

    # -------------------------------------------------------------- the world
    @property
    def rank(self) -> int:
        """This process's rank in the job (0 before setup or without a process group)."""
        return dist.get_rank() if dist.is_initialized() else 0

    @property
    def world_size(self) -> int:
        """Processes in the job."""
        return dist.get_world_size() if dist.is_initialized() else 1

    def data_parallel(self) -> tuple[int, int]:
        """(rank, size) among the ranks that read different data; all ranks by default."""
        return self.rank, self.world_size

    @property
    def is_main_process(self) -> bool:
        return self.rank == 0

    def _barrier(self) -> None:
        if dist.is_initialized():
            dist.barrier()

    def _reduce_mean(self, value: torch.Tensor) -> float:
        value = torch.as_tensor(value, dtype=torch.float32)
        return float(all_reduce_sum(value)) / self.world_size

    def _sum_over_replicas(self, value: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(value)  # every rank reads its own data unless a subclass says not

    # ------------------------------------------------------------------- data
    def get_train_dataloader(self) -> DataLoader:
        """The base DataLoader, over this data-parallel rank's share of each global batch."""
        dp_rank, dp_size = self.data_parallel()
        if self.train_dataset is None:
            raise ValueError("train() needs a train_dataset")
        if isinstance(self.train_dataset, IterableDataset):
            if dp_size > 1:
                raise ValueError(
                    "an IterableDataset cannot be split between data-parallel ranks by the "
                    "trainer; use a map-style dataset (or one sharded per rank and dp size 1)"
                )
            return super().get_train_dataloader()
        sampler = self.train_sampler
        if sampler is None:
            sampler = ResumableShuffleSampler(len(self.train_dataset), seed=self.args.data_seed)
        replicas = getattr(sampler, "num_replicas", 1)  # a sampler that shards by itself
        if replicas not in (1, dp_size):
            raise ValueError(f"train_sampler shards over {replicas} ranks; the job has {dp_size}")
        if dp_size > 1 and replicas == 1:
            sampler = RankShardSampler(sampler, dp_size, dp_rank)
        return resumable_dataloader(
            self.train_dataset, self.args.per_device_train_batch_size, sampler,
            collate_fn=self.data_collator,
            drop_last=self.args.dataloader_drop_last or self.drop_incomplete_batches,
            **self._loader_kwargs(),
        )  # fmt: skip

    def get_eval_dataloader(self, eval_dataset: Dataset | None = None) -> DataLoader:
        """Dataset order split over the data-parallel ranks (equal shares, padded by wrapping)."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("evaluate() needs an eval_dataset")
        dp_rank, dp_size = self.data_parallel()
        if dp_size > 1 and isinstance(dataset, IterableDataset):
            raise ValueError("an IterableDataset cannot be split between data-parallel ranks")
        sampler = eval_shard_sampler(len(dataset), dp_size, dp_rank) if dp_size > 1 else None
        return DataLoader(
            dataset, batch_size=self.args.per_device_eval_batch_size, sampler=sampler,
            collate_fn=self.data_collator, drop_last=self.drop_incomplete_batches,
            generator=torch.Generator(), **self._loader_kwargs(),
        )  # fmt: skip

    # -------------------------------------------------------------- training
    def train(self, resume_from_checkpoint: bool | str | None = None) -> TrainOutput:
        """`BaseTrainer.train`; a failed collective gains a note saying what it likely means."""
        try:
            return super().train(resume_from_checkpoint)
        except dist.DistError as e:
            e.add_note(_PEER_LOST.format(rank=self.rank, world=self.world_size))
            raise
        except RuntimeError as e:
            if any(marker in str(e) for marker in _PEER_FAILURE_MARKERS):
                e.add_note(_PEER_LOST.format(rank=self.rank, world=self.world_size))
            raise

    def _callback_model(self) -> nn.Module | None:
        """The model callbacks receive; None where using it on rank 0 alone would hang."""
        return self.model

    def _call(self, event: str, **kwargs: Any) -> TrainerControl:
        self.callback_handler.objects["model"] = self._callback_model()
        return super()._call(event, **kwargs)

    # ------------------------------------------------------------ checkpoints
    def _checkpoint_layout(self) -> dict[str, Any]:
        """What must match for a checkpoint to resume here (written to distributed.json)."""
        return {"trainer": type(self).__name__, "world_size": self.world_size}

    def _save_model_and_optimizer(self, directory: str) -> None:
        """Called on every rank inside the checkpoint's temporary directory."""
        raise NotImplementedError

    def _load_model_and_optimizer(self, directory: str) -> None:
        """Called on every rank to restore what `_save_model_and_optimizer` wrote."""
        raise NotImplementedError

    def _save_checkpoint(self) -> str:
        """Write `checkpoint-<step>` from every rank (see the module docstring)."""
        step = self.state.global_step
        path = layout.checkpoint_path(self.args.checkpoints_dir, step)
        if self._last_saved_step == step:
            return path
        with collective_directory(path) as temp:
            self._save_model_and_optimizer(temp)
            torch.save(
                self.batches.state_dict(),
                os.path.join(temp, layout.rank_file(layout.DATALOADER_FILE, self.rank)),
            )
            torch.save(get_rng_state(), os.path.join(temp, layout.rank_file(layout.RNG_FILE, self.rank)))
            if self.is_main_process:
                torch.save(self.lr_scheduler.state_dict(), os.path.join(temp, layout.SCHEDULER_FILE))
                with open(os.path.join(temp, layout.DISTRIBUTED_FILE), "w", encoding="utf-8") as f:
                    json.dump(self._checkpoint_layout(), f, indent=2)
                self.state.save_to_json(os.path.join(temp, layout.STATE_FILE))
        if self.is_main_process and self.args.save_total_limit:
            ckpt.prune_checkpoints(self.args.checkpoints_dir, self.args.save_total_limit)
        self._barrier()
        self._last_saved_step = step
        self._call("on_save", checkpoint_dir=path)
        return path

    def _load_checkpoint(self, path: str) -> None:
        """Restore what `_save_checkpoint` wrote; RNG last."""
        logger.info("resuming from %s", path)
        layout_path = os.path.join(path, layout.DISTRIBUTED_FILE)
        if not os.path.isfile(layout_path):
            raise ValueError(
                f"{path} was not written by a multi-process trainer (no {layout.DISTRIBUTED_FILE})"
            )
        with open(layout_path, encoding="utf-8") as f:
            saved = json.load(f)
        wanted = self._checkpoint_layout()
        if saved != wanted:
            raise ValueError(
                f"{path} was saved with layout {saved}; this job is {wanted}. Resume with the "
                "same trainer, number of processes and parallel layout."
            )

        def load(name: str) -> Any:
            return torch.load(os.path.join(path, name), map_location="cpu", weights_only=True)

        self._load_model_and_optimizer(path)
        saved_state = TrainerState.load_from_json(os.path.join(path, layout.STATE_FILE))
        self._restore_lr_scheduler(load(layout.SCHEDULER_FILE), saved_state)
        self.batches.load_state_dict(load(layout.rank_file(layout.DATALOADER_FILE, self.rank)))
        self.state.global_step = saved_state.global_step
        self.state.epoch = saved_state.epoch
        self.state.num_input_tokens_seen = saved_state.num_input_tokens_seen
        self.state.log_history = saved_state.log_history
        self._last_saved_step = saved_state.global_step
        set_rng_state(load(layout.rank_file(layout.RNG_FILE, self.rank)))

    # ---------------------------------------------- signals agreed by all ranks
    @property
    def _signals(self) -> _AgreedSignals:
        return self.__dict__["_agreed_signals"]

    @_signals.setter
    def _signals(self, local: StopSignals) -> None:
        # BaseTrainer assigns a fresh StopSignals in __init__ and in train().
        self.__dict__["_agreed_signals"] = _AgreedSignals(local)


# What gloo's errors say when the other end of a connection went away.
_PEER_FAILURE_MARKERS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
_PEER_LOST = (
    "rank {rank} of {world}: a collective operation failed, most likely because another "
    "process of this job died or was killed (see its own error above). The job stops; "
    "restart it with resume_from_checkpoint=True to continue from the last checkpoint."
)


class _AgreedSignals:
    """A `StopSignals` whose `received` is what all ranks agreed on at the last step end."""

    def __init__(self, local: StopSignals) -> None:
        self.local = local
        self.received: str | None = None

    def __enter__(self) -> _AgreedSignals:
        self.local.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.local.__exit__(*exc)

    def agree(self) -> None:
        """All-reduce the signal numbers seen so far; every rank then reports the same one."""
        seen = signal.Signals[self.local.received].value if self.local.received else 0
        code = torch.tensor([seen], dtype=torch.int64)
        if dist.is_initialized() and dist.get_world_size() > 1:
            if dist.get_backend() == "nccl":
                code = code.cuda()
            dist.all_reduce(code, op=dist.ReduceOp.MAX)
        code = int(code.item())
        if code and self.received is None:
            self.received = signal.Signals(code).name


class _StopAgreement(TrainerCallback):
    """Makes every rank see a stop signal at the same step (see `_AgreedSignals`)."""

    priority = 100  # after the other callbacks: nothing it decides depends on them

    def __init__(self, trainer: MultiProcessTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer._signals.agree()
