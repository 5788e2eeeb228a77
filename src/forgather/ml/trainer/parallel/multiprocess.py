"""`MultiProcessTrainer`: what `AccelTrainer` and `PipelineTrainer` add to the loop alike.

Every rank runs `BaseTrainer`'s loop; this class makes the ranks agree, through
the hooks of `TrainerParts`:

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

The decision a reader may question: the stop policy (`AgreedStopSignals`)
costs one all-reduce of one integer at every step, even when no signal came.
A signal reaching the ranks a few milliseconds apart would otherwise make one
rank checkpoint (collectives) while another starts the next step (other
collectives), and the job would hang instead of stopping cleanly.
"""

from __future__ import annotations

import signal
from contextlib import AbstractContextManager

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, IterableDataset

from forgather.ml import checkpoint_layout as layout

from ..base_trainer import BaseTrainer
from ..batch_stream import resumable_dataloader
from ..sampler import ResumableShuffleSampler
from ..state import TrainOutput
from ..stop_signals import StopSignals
from .distributed import RankShardSampler, all_reduce_sum, collective_directory, eval_shard_sampler

__all__ = ["AgreedStopSignals", "MultiProcessTrainer"]


class MultiProcessTrainer(BaseTrainer):
    """The loop on every rank of a `torchrun` job (see the module docstring).

    Constructed as `BaseTrainer`; a subclass adds its options as keyword-only
    arguments and sets `timeout_seconds` (how long a collective waits for a
    missing peer), which its `_setup` uses to join the process group.

    Attributes:
        drop_incomplete_batches: Drop the last, smaller batch of every epoch and
            of the evaluation (a subclass whose batches must have one shape sets it).
    """

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

    def _stop_signals(self) -> StopSignals:
        return AgreedStopSignals()

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

    # ------------------------------------------------------------ checkpoints
    def _checkpoint_directory(self, path: str) -> AbstractContextManager[str]:
        return collective_directory(path)  # every rank writes into it

    def _rank_file(self, name: str) -> str:
        return layout.rank_file(name, self.rank)

    def _checkpoint_layout(self) -> dict[str, object]:
        return {"trainer": type(self).__name__, "world_size": self.world_size}

    def _save_model_and_optimizer(self, directory: str) -> None:
        raise NotImplementedError  # each parallel layout shards them its own way

    def _load_model_and_optimizer(self, directory: str) -> None:
        raise NotImplementedError


# What gloo's errors say when the other end of a connection went away.
_PEER_FAILURE_MARKERS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
_PEER_LOST = (
    "rank {rank} of {world}: a collective operation failed, most likely because another "
    "process of this job died or was killed (see its own error above). The job stops; "
    "restart it with resume_from_checkpoint=True to continue from the last checkpoint."
)


class AgreedStopSignals(StopSignals):
    """`StopSignals` whose `poll()` every rank agrees on: the first signal any rank received.

    `poll()` is a collective (an all-reduce of one int64): every rank calls it
    at every step boundary, which the loop does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.agreed: str | None = None

    def poll(self) -> str | None:
        seen = signal.Signals[self.received].value if self.received else 0
        code = torch.tensor([seen], dtype=torch.int64)
        if dist.is_initialized() and dist.get_world_size() > 1:
            if dist.get_backend() == "nccl":
                code = code.cuda()
            dist.all_reduce(code, op=dist.ReduceOp.MAX)
        code = int(code.item())
        if code and self.agreed is None:
            self.agreed = signal.Signals(code).name
        return self.agreed

    @property
    def stopped_by(self) -> str | None:
        return self.agreed
