"""Process-group plumbing the multi-process trainers share.

Joining the job (`init_process_group`, `check_joined`), splitting the data
between data-parallel ranks (`RankShardSampler`, `eval_shard_sampler`),
small collectives (`broadcast_object`, `all_reduce_sum`), giving every
replica the first one's weights (`broadcast_module`: each process builds its
own copy of the model, from its own random generator unless the job seeded
them alike), and a checkpoint directory that every rank writes into and that
still appears atomically (`collective_directory`).

The decision a reader may question: `check_joined` compares the world the
launcher announced (`WORLD_SIZE`) with the one the process group really
joined, and runs one real all-reduce to prove it. A CPU job started the wrong
way (`accelerate launch --cpu --num_processes 2`, or torchrun without
`cpu=True` on a machine without GPUs) otherwise gives N processes that each
train alone and write over each other's checkpoints, with nothing failing.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import time
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler
from torch.utils.data.distributed import DistributedSampler

from .. import checkpoint as ckpt

__all__ = [
    "RankShardSampler",
    "all_reduce_sum",
    "broadcast_module",
    "broadcast_object",
    "check_joined",
    "collective_directory",
    "destroy_process_group_at_exit",
    "eval_shard_sampler",
    "init_process_group",
    "launched_world_size",
]


def launched_world_size() -> int:
    """Processes the launcher (torchrun) started: `WORLD_SIZE`, 1 when not launched."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_process_group(use_cpu: bool, timeout_seconds: float) -> bool:
    """Join the job's process group unless already joined; True if this call joined it.

    Args:
        use_cpu: gloo on the CPU; else NCCL on this rank's GPU (`LOCAL_RANK`).
        timeout_seconds: How long a collective waits for a missing peer before failing.
    """
    if dist.is_initialized() or (launched_world_size() == 1 and "MASTER_ADDR" not in os.environ):
        return False
    timeout = datetime.timedelta(seconds=timeout_seconds)
    if use_cpu:
        dist.init_process_group("gloo", timeout=timeout)
    else:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", timeout=timeout, device_id=device)
    return True


def destroy_process_group_at_exit() -> None:
    """Leave the process group when the interpreter exits, while it is still whole.

    A process that exits with a live gloo group can abort (SIGABRT, "terminate
    called without an active exception"): a gloo worker thread that finishes
    a collective after the main thread has moved on drops the last reference
    to the tensors it held, and that needs the GIL, which the interpreter's
    finalization no longer hands out (pytorch/pytorch#179291; a core dump of
    a loaded 2-rank run showed exactly that). So at exit the group is
    destroyed, and while gloo's worker threads are still there (something
    such as DDP's reducer keeps the group alive, so destroying it does not
    join them) the main thread releases the GIL for a moment to let them
    finish. No barrier: after a failure on another rank it would wait for the
    whole timeout.
    """
    if not getattr(destroy_process_group_at_exit, "registered", False):
        atexit.register(_destroy_quietly)
        destroy_process_group_at_exit.registered = True


#: How long the exiting main thread lets gloo's worker threads run (seconds): a thread
#: that was runnable gets a core within this even on a loaded machine.
GLOO_DRAIN_SECONDS = 0.2


def _destroy_quietly() -> None:
    with contextlib.suppress(Exception):
        if dist.is_initialized():
            dist.destroy_process_group()
    if _gloo_threads_alive():
        time.sleep(GLOO_DRAIN_SECONDS)  # releases the GIL to them


def _gloo_threads_alive() -> bool:
    """Whether this process still runs gloo's worker threads (Linux names them; elsewhere assume so)."""
    tasks = "/proc/self/task"
    if not os.path.isdir(tasks):
        return True
    for tid in os.listdir(tasks):
        with contextlib.suppress(OSError), open(f"{tasks}/{tid}/comm") as comm:
            if comm.read().startswith("pt_gloo"):
                return True
    return False


def check_joined(expected: int, joined: int) -> None:
    """Fail unless every process the launcher started is in one process group.

    Args:
        expected: `WORLD_SIZE` as the launcher set it.
        joined: The size of the group this process trains in.

    Raises:
        RuntimeError: Naming both numbers and how to launch correctly.
    """
    if expected != joined:
        raise RuntimeError(
            f"the launcher started {expected} processes but this one trains in a group of "
            f"{joined}: the ranks would train alone, unsynchronised. Launch with "
            "`forgather -t CONFIG train --nproc N` (torchrun), not `accelerate launch --cpu`."
        )
    if joined > 1:
        ones = torch.ones((), device=_collective_device())
        dist.all_reduce(ones)
        if int(ones.item()) != expected:
            raise RuntimeError(
                f"an all-reduce over {expected} processes summed to {int(ones.item())}"
            )


def _collective_device() -> torch.device:
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(value: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """`value` summed over `group` (a new tensor; the input is left alone)."""
    total = value.detach().clone().to(_collective_device())
    if dist.is_initialized():
        dist.all_reduce(total, group=group)
    return total.to(value.device)


def broadcast_module(module: nn.Module, group: dist.ProcessGroup | None = None) -> None:
    """Copy the parameters and buffers of `module` on the group's first rank to every rank of it.

    One broadcast per tensor, once per job: no flat copy of the model in memory.

    Args:
        module: This rank's copy; its tensors have the same names and shapes on every rank.
        group: The ranks holding copies of `module` (None: the whole job).
    """
    if not dist.is_initialized() or dist.get_world_size(group) == 1:
        return
    source = dist.get_global_rank(group, 0) if group is not None else 0
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=source, group=group)


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank `src`'s `value` on every rank (any picklable object)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=src)
    return holder[0]


class RankShardSampler(Sampler[int]):
    """This rank's share of another sampler: one index of every `num_replicas` it yields.

    The indices the wrapped sampler yields are taken `num_replicas` at a time
    and rank `r` keeps the `r`-th of each group, so one step of N ranks with
    batch B covers the same samples as one process with batch N*B. An
    incomplete last group is dropped: every rank gets the same number of
    batches, which collectives need (a rank with one more batch would wait
    forever for the others).

    Args:
        sampler: Order of the whole dataset (e.g. `ResumableShuffleSampler`);
            its `set_epoch`, `state_dict` and `load_state_dict` are used when present.
        num_replicas: Ranks sharing the data.
        rank: This rank, in [0, num_replicas).
    """

    def __init__(self, sampler: Sampler, num_replicas: int, rank: int) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.sampler = sampler
        self.num_replicas = num_replicas
        self.rank = rank

    def __len__(self) -> int:
        return len(self.sampler) // self.num_replicas

    def __iter__(self) -> Iterator[int]:
        group: list[int] = []
        for index in self.sampler:
            group.append(index)
            if len(group) == self.num_replicas:
                yield group[self.rank]
                group = []

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the wrapped sampler."""
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any] | None:
        """The wrapped sampler's position (after whole groups); None if it keeps none.

        None makes `BatchStream` resume by re-drawing and skipping index batches.
        """
        return self.sampler.state_dict() if hasattr(self.sampler, "state_dict") else None

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        """Continue from a position returned by `state_dict()`."""
        if state is not None:
            self.sampler.load_state_dict(state)


def eval_shard_sampler(num_samples: int, num_replicas: int, rank: int) -> Sampler[int]:
    """Dataset order split over ranks for evaluation, padded by wrapping to equal shares."""
    return DistributedSampler(
        range(num_samples), num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False
    )


@contextlib.contextmanager
def collective_directory(final_path: str) -> Iterator[str]:
    """`checkpoint.atomic_directory` for a whole job: every rank writes, one rename.

    Rank 0 creates the hidden temporary directory and tells the others where
    it is; on leaving the block every rank waits until all have written, then
    rank 0 fsyncs and renames it into place, and everyone waits for that.
    Must be entered by every rank of the job.

    Args:
        final_path: Where the finished directory should appear.

    Yields:
        The temporary directory, the same on every rank.
    """
    rank = dist.get_rank() if dist.is_initialized() else 0
    with ckpt.atomic_directory(final_path) if rank == 0 else contextlib.nullcontext() as temp:
        temp = broadcast_object(temp)
        yield temp
        if dist.is_initialized():
            dist.barrier()  # every rank's files are written before rank 0 renames
    if dist.is_initialized():
        dist.barrier()  # the rename is done before anyone reads or prunes checkpoints
