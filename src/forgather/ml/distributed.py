"""The original Forgather's distributed-environment helpers, on our process-group plumbing.

Its configs start with ``distributed_env: !singleton:forgather.ml.distributed:DistributedEnvironment``
and pass it to the trainer and the training script; dataset code wraps
tokenization in ``with main_process_first():``.

- :class:`DistributedEnvironment` reads the launcher's variables (``RANK``,
  ``LOCAL_RANK``, ``WORLD_SIZE``, ...; the constructor's values fill in those
  that are unset), picks the process's device and joins the process group
  when the job has more than one process (or ``always=True``).
- :func:`main_process_first` runs a block on each node's local rank 0 before
  the other ranks of that node.

Unlike the original, nothing is exported into the environment for a
single-process run (see :func:`init_from_env`).

The decision a reader may question: ``main_process_first`` needs a process
group to make the other ranks wait; before one is joined (no
``DistributedEnvironment`` built yet, or a single process) it runs the block
at once on every rank rather than failing, as a single-process run must.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.distributed as tdist

__all__ = [
    "DistributedEnvInterface",
    "DistributedEnvironment",
    "StaticDistributedEnvironment",
    "from_env",
    "get_barrier_fn",
    "init_from_env",
    "main_process_first",
]

logger = logging.getLogger(__name__)

# (environment variable, attribute, type)
_VARIABLES = (
    ("RANK", "rank", int),
    ("LOCAL_RANK", "local_rank", int),
    ("WORLD_SIZE", "world_size", int),
    ("LOCAL_WORLD_SIZE", "local_world_size", int),
    ("MASTER_ADDR", "master_addr", str),
    ("MASTER_PORT", "master_port", int),
)

_depth = 0  # main_process_first nesting: only the outermost one waits


class DistributedEnvInterface(Protocol):
    """What a distributed environment tells its users."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    master_addr: str
    master_port: int
    device: str


def init_from_env(env: Any) -> None:
    """Take each launcher variable that is set; export the attribute's value for those that are not.

    Nothing is exported for a single process: the variables would make later
    code in this process (a launcher, a trainer) believe it runs under torchrun.
    """
    for variable, attribute, kind in _VARIABLES:
        if variable in os.environ:
            setattr(env, attribute, kind(os.environ[variable]))
    if int(env.world_size) > 1:
        for variable, attribute, _ in _VARIABLES:
            os.environ.setdefault(variable, str(getattr(env, attribute)))


def get_barrier_fn(group: Any = None) -> Callable[[], Any]:
    """A barrier over `group` (None: all ranks), or a no-op without a process group."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return lambda *args, **kwargs: None
    if tdist.get_backend(group) == "nccl":
        return lambda: tdist.barrier(group=group, device_ids=[torch.cuda.current_device()])
    return lambda: tdist.barrier(group=group)


@dataclass(kw_only=True)
class StaticDistributedEnvironment:
    """A distributed environment given by hand (tests, or values from elsewhere)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    master_addr: str = "localhost"
    master_port: int = 29501
    device: str = "cpu"


def from_env(**kwargs: Any) -> StaticDistributedEnvironment:
    """A `StaticDistributedEnvironment` from the launcher's variables (`kwargs` for unset ones)."""
    env = StaticDistributedEnvironment(**kwargs)
    init_from_env(env)
    return env


class DistributedEnvironment:
    """This process's place in the job; joins the process group when there is more than one.

    Args:
        rank, local_rank, world_size, local_world_size, master_addr, master_port:
            Used where the launcher (torchrun) set no variable; exported then.
        backend: The process group's backend; None: NCCL with CUDA, else gloo.
        log_level: Level of this module's logger.
        device_map: `rank -> device name`; None: `cuda:<local_rank>` with CUDA, else "cpu".
        always: Join a process group even with one process.
    """

    def __init__(
        self,
        rank: int = 0,
        local_rank: int = 0,
        world_size: int = 1,
        local_world_size: int = 1,
        master_addr: str = "localhost",
        master_port: int = 29501,
        backend: str | None = None,
        log_level: str | int = "INFO",
        device_map: Any = None,
        always: bool = False,
    ) -> None:
        logger.setLevel(log_level)
        self.rank = rank
        self.local_rank = local_rank
        self.world_size = world_size
        self.local_world_size = local_world_size
        self.master_addr = master_addr
        self.master_port = master_port
        self.backend = backend
        self.device_map = device_map
        self.always = always
        init_from_env(self)
        if torch.cuda.is_available():
            self.device = device_map[self.rank] if device_map else f"cuda:{self.local_rank}"
            torch.cuda.set_device(self.device)
        else:
            self.device = "cpu"
        if self.world_size > 1 or always:
            self._join()
        self.barrier_fn = get_barrier_fn()

    def _join(self) -> None:
        if tdist.is_initialized():
            return
        for variable, attribute, _ in _VARIABLES:  # what init_process_group reads
            os.environ.setdefault(variable, str(getattr(self, attribute)))
        backend = self.backend or ("nccl" if self.device.startswith("cuda") else "gloo")
        device_id = torch.device(self.device) if self.device.startswith("cuda") else None
        tdist.init_process_group(backend=backend, device_id=device_id)
        from forgather.ml.trainer.parallel.distributed import destroy_process_group_at_exit

        destroy_process_group_at_exit()

    def barrier(self) -> None:
        """Wait for every rank (no-op with one process)."""
        self.barrier_fn()

    def __repr__(self) -> str:
        return (
            f"DistributedEnvironment(rank={self.rank}, local_rank={self.local_rank}, "
            f"world_size={self.world_size}, local_world_size={self.local_world_size}, "
            f"master_addr={self.master_addr}, master_port={self.master_port}, "
            f"backend={self.backend})"
        )


@contextlib.contextmanager
def main_process_first(dist: Any = None) -> Iterator[None]:
    """Run the block on local rank 0 first, then on the node's other ranks.

    For work whose result the first process caches (tokenizing a dataset). The
    barrier spans the whole job; nested uses do not wait again. Without a
    process group (one process) the block simply runs.

    Args:
        dist: Accepted for the original's signature; unused.
    """
    global _depth
    if (
        _depth
        or not (tdist.is_available() and tdist.is_initialized())
        or tdist.get_world_size() == 1
    ):
        yield
        return
    barrier = get_barrier_fn()
    first = int(os.environ.get("LOCAL_RANK", "0")) == 0
    _depth += 1
    try:
        if not first:
            barrier()  # wait for local rank 0 to finish the block
        yield
    finally:
        if first:
            barrier()  # release the others
        _depth -= 1
