"""``TrainerControlCallback``: let ``forgather control`` steer a running job.

Rank 0 registers the job (``forgather.control.registry``) and serves commands
on 127.0.0.1 from a side thread. At every step boundary rank 0 takes the
oldest command that arrived and broadcasts it, so all ranks apply the same
command at the same step:

- ``save``: checkpoint now (and evaluate too when ``evaluate_on_save``);
- ``stop`` / ``save-stop``: checkpoint, then end training cleanly;
- ``abort``: end at once without a checkpoint (raises :class:`TrainingAborted`).

Each rank logs the command it applies (``forgather control: save at step 12
(rank 1 of 2)``, a warning, so it shows without any logging setup). When the
job ends, its registry entry is rewritten to say how (``finished``,
``stopped``, ``aborted``, or ``failed`` when an exception ended it).

Decision a reader may question: the broadcast happens every step even when no
command is pending (one int64 per step), because only rank 0 knows whether one
is; skipping it on some ranks would deadlock the collective.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from forgather.control import (
    ControlServer,
    JobRecord,
    mark_ended,
    new_job_id,
    new_token,
    register,
)

from .base import TrainerCallback

__all__ = ["TrainerControlCallback", "TrainingAborted"]

logger = logging.getLogger(__name__)

# Command codes broadcast from rank 0; 0 means "nothing to do".
_CODES = {"save": 1, "stop": 2, "save-stop": 3, "abort": 4}
_NAMES = {code: name for name, code in _CODES.items()}


class TrainingAborted(RuntimeError):
    """Raised on every rank when ``forgather control abort`` is applied."""


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), 1


class TrainerControlCallback(TrainerCallback):
    """Registers the job and applies ``forgather control`` commands at step boundaries.

    Args:
        config_name: shown by ``forgather control list``.
        evaluate_on_save: a ``save`` command also runs an evaluation.
        port: the port to listen on (0 or None: any free port).
        job_id: the job's id in ``forgather control list`` (None: a new one).
        enable_http: the original Forgather's switch; commands arrive over
            HTTP only, so False is refused (leave the callback out instead).

    Example:
        >>> trainer = Trainer(model, args, train_dataset=data,
        ...                   callbacks=[TrainerControlCallback("my run")])  # doctest: +SKIP
    """

    def __init__(
        self,
        config_name: str = "",
        evaluate_on_save: bool = False,
        port: int | None = 0,
        *,
        job_id: str | None = None,
        enable_http: bool | None = None,
    ) -> None:
        if enable_http is False:
            raise ValueError(
                "TrainerControlCallback(enable_http=False) is not supported: commands reach the "
                "job over its HTTP endpoint; remove the callback to train without remote control"
            )
        self.config_name = config_name
        self.evaluate_on_save = evaluate_on_save
        self.port = port or 0
        self.job_id = job_id
        self.server: ControlServer | None = None
        self.record: JobRecord | None = None
        self._registry: Path | None = None  # the directory it registered in
        self.applied: list[tuple[int, str]] = []  # (step, command) applied on this rank
        self._status: dict[str, Any] = {"state": "starting"}
        self._started = 0.0
        self._start_step = 0

    # -- lifecycle --------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self._end("failed")  # a previous train() of this trainer that raised, if any
        rank, world = _world()
        self._started, self._start_step = time.monotonic(), state.global_step
        self._update(args, state, phase="running")
        if rank != 0:
            return
        launched = int(os.environ.get("WORLD_SIZE", "1"))
        if launched > world:
            logger.warning(
                "forgather control: %d processes were launched but torch.distributed is not "
                "initialised; commands reach rank 0 only (use a multi-process trainer)", launched,
            )  # fmt: skip
        token = new_token()
        self.server = ControlServer(token, lambda: dict(self._status), self.port).start()
        self.record = JobRecord(
            job_id=self.job_id or new_job_id(), pid=os.getpid(), host=socket.gethostname(), port=self.server.port,
            token=token, run_dir=str(args.output_dir), config=self.config_name, world_size=world,
        )  # fmt: skip
        self._registry = register(self.record).parent
        atexit.register(self._end, "failed")  # training died with an exception

    def on_train_end(self, args, state, control, **kwargs):
        # Stopped early: by a command, a signal, or another callback.
        stopped = state.global_step < state.max_steps
        self._update(args, state, phase="stopped" if stopped else "finished")
        self._end(self._status["state"])

    def _end(self, how: str) -> None:
        """Stop serving and record in the registry how the job ended (rank 0)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        if self.record is not None:
            mark_ended(self.record, how, self._status.get("step"), self._registry)
            self.record = None
            atexit.unregister(self._end)

    # -- commands ---------------------------------------------------------------
    def on_step_end(self, args, state, control, **kwargs):
        # Status first: a command that arrives from now on is applied at this
        # step or the next, never later than the step its reply reports plus one.
        self._update(args, state)
        code = self._next_command()
        if not code:
            return control
        command = _NAMES[code]
        rank, world = _world()
        step = state.global_step
        self.applied.append((step, command))
        logger.warning(
            "forgather control: %s at step %d (rank %d of %d)", command, step, rank, world
        )
        if command == "abort":
            self._update(args, state, phase="aborted")
            self._end("aborted")
            raise TrainingAborted(f"aborted by `forgather control abort` at step {step}")
        control.should_save = True
        control.should_evaluate = control.should_evaluate or (
            command == "save" and self.evaluate_on_save
        )
        if command in ("stop", "save-stop"):
            control.should_training_stop = True
            control.should_log = True  # the last window's loss reaches the logs
            self._update(args, state, phase="stopping")
        return control

    def _next_command(self) -> int:
        """Rank 0's oldest pending command, agreed by every rank (0 when none)."""
        command = self.server.next_command() if self.server is not None else None
        code = _CODES[command] if command else 0
        if _distributed():
            flag = torch.tensor([code], dtype=torch.int64)
            if dist.get_backend() == "nccl":
                flag = flag.cuda()
            dist.broadcast(flag, src=0)
            code = int(flag.item())
        return code

    # -- status -----------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        for key in ("loss", "learning_rate", "eval_loss", "tokens_per_second"):
            if key in logs:
                self._status[key] = logs[key]

    def on_save(self, args, state, control, checkpoint_dir=None, **kwargs):
        if checkpoint_dir is not None:
            self._status["last_checkpoint"] = str(checkpoint_dir)

    def _update(self, args, state, phase: str | None = None) -> None:
        elapsed = time.monotonic() - self._started
        done = state.global_step - self._start_step
        remaining = max(state.max_steps - state.global_step, 0)
        self._status.update(
            step=state.global_step,
            max_steps=state.max_steps,
            epoch=round(state.epoch, 4),
            eta_seconds=round(elapsed / done * remaining, 1) if done else None,
            run_dir=str(args.output_dir),
        )
        if phase is not None:
            self._status["state"] = phase
