"""Checkpoints on disk: atomic directories, pruning, weights, and the loop's own state files.

What goes into a checkpoint is decided by `BaseTrainer._save_checkpoint` and
its hooks; what its files are called, and which checkpoint is the newest, by
`forgather.ml.checkpoint_layout`. This module makes writing and deleting them
safe, and reads and writes the files every trainer writes alike: the schedule,
`trainer_state.json` and the process layout (main process), the data position
and generator states (each process; RNG states: `rng.py`).

The decision a reader may question: atomicity comes from the file system, not
from marker files. Everything is written into a hidden temporary directory next
to the final one, flushed with fsync, and renamed into place in one step; a
crash at any point leaves either the complete new checkpoint or none, and the
previous checkpoints untouched. Pruning renames before deleting for the same
reason. `.pt` files are loaded with `weights_only=True`, so they may hold only
tensors and plain Python values.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import torch
from safetensors.torch import load_model, save_model
from torch.optim.lr_scheduler import LRScheduler

from forgather.ml import checkpoint_layout as layout
from forgather.ml.checkpoint_layout import is_linked, list_checkpoints
from forgather.ml.file_modes import share_weights

from .batch_stream import BatchStream
from .optimization import restore_lr_scheduler
from .rng import get_rng_state, set_rng_state
from .state import TrainerState

__all__ = [
    "atomic_directory",
    "check_layout",
    "find_checkpoint",
    "load_model_weights",
    "load_process_state",
    "load_shared_state",
    "prune_checkpoints",
    "save_model_weights",
    "save_process_state",
    "save_shared_state",
]

logger = logging.getLogger(__name__)

_TEMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(final_path: str) -> Iterator[str]:
    """Write a directory so that it appears complete at `final_path` or not at all.

    Yields a temporary directory in the same parent; on a clean exit its files are
    fsynced and it is renamed to `final_path` (replacing an existing directory of
    that name). On an exception the temporary directory is removed and the
    exception propagates. Leftovers of earlier crashed writes in the parent are
    removed first.

    Args:
        final_path: Where the finished directory should appear.

    Yields:
        The temporary directory to write into.
    """
    parent, name = os.path.split(os.path.abspath(final_path))
    os.makedirs(parent, exist_ok=True)
    for entry in os.listdir(parent):  # remains of saves or prunes killed part way
        if entry.startswith((_TEMP_PREFIX, _TRASH_PREFIX)):
            _remove_quietly(os.path.join(parent, entry))
    temp = os.path.join(parent, f"{_TEMP_PREFIX}{name}-{os.getpid()}")
    os.makedirs(temp)
    try:
        yield temp
        for root, _dirs, files in os.walk(temp):
            for file in files:
                _fsync_path(os.path.join(root, file))
            _fsync_path(root)
        if os.path.exists(final_path):
            # Only when re-saving the same step; a crash between the two renames
            # loses this step's checkpoint but never an older one.
            trash = os.path.join(parent, f"{_TRASH_PREFIX}{name}-{os.getpid()}")
            os.rename(final_path, trash)
            os.rename(temp, final_path)
            _remove_quietly(trash)
        else:
            os.rename(temp, final_path)
        _fsync_path(parent)  # make the rename itself durable
    except BaseException:
        _remove_quietly(temp)
        raise


def prune_checkpoints(checkpoints_dir: str, keep: int, best: str | None = None) -> list[str]:
    """Delete all but the `keep` newest checkpoints and `best`; return the deleted paths.

    A checkpoint that `forgather checkpoint link` points the model directory at
    is kept as well (`is_linked`): deleting it would leave the link dangling.
    """
    doomed = list_checkpoints(checkpoints_dir)[:-keep] if keep > 0 else []
    kept = None if best is None else os.path.realpath(best)
    doomed = [p for p in doomed if not is_linked(p) and os.path.realpath(p) != kept]
    for path in doomed:
        parent, name = os.path.split(path)
        trash = os.path.join(parent, f"{_TRASH_PREFIX}{name}-{os.getpid()}")
        os.rename(path, trash)  # disappears as a whole before it is half deleted
        _remove_quietly(trash)
    return doomed


def save_model_weights(model: torch.nn.Module, path: str) -> None:
    """Save the model's state dict as safetensors; tied weights are stored once."""
    save_model(model, path, metadata={"format": "pt"})
    share_weights(path)


def load_model_weights(model: torch.nn.Module, path: str) -> None:
    """Load weights saved by `save_model_weights` (strict: every key must match)."""
    device = next(model.parameters()).device
    load_model(model, path, strict=True, device=str(device))


# -- the loop's state files ---------------------------------------------------------------


def find_checkpoint(resume: bool | str | None, checkpoints_dir: str) -> str | None:
    """The checkpoint `resume_from_checkpoint` names: None, the newest in `checkpoints_dir`, a path.

    Raises:
        FileNotFoundError: `resume` is a path without a complete checkpoint.
    """
    if not resume:
        return None
    if isinstance(resume, str):
        if not os.path.isfile(os.path.join(resume, layout.STATE_FILE)):
            raise FileNotFoundError(f"no complete checkpoint at {resume!r}")
        return resume
    found = layout.latest_checkpoint(checkpoints_dir)
    if found is None:
        # A warning: a mistyped output or model name looks exactly like this.
        logger.warning(
            "resume_from_checkpoint: no checkpoint in %s, so this is a new run", checkpoints_dir
        )
    return found


def save_process_state(
    directory: str, rank_file: Callable[[str], str], batches: BatchStream
) -> None:
    """This process's data position and random generator states (files named by `rank_file`)."""
    torch.save(batches.state_dict(), os.path.join(directory, rank_file(layout.DATALOADER_FILE)))
    torch.save(get_rng_state(), os.path.join(directory, rank_file(layout.RNG_FILE)))


def save_shared_state(
    directory: str,
    lr_scheduler: LRScheduler,
    state: TrainerState,
    process_layout: dict[str, Any] | None,
) -> None:
    """The files one process writes for the job: schedule, layout, and last `trainer_state.json`."""
    torch.save(lr_scheduler.state_dict(), os.path.join(directory, layout.SCHEDULER_FILE))
    if process_layout is not None:
        with open(os.path.join(directory, layout.DISTRIBUTED_FILE), "w", encoding="utf-8") as f:
            json.dump(process_layout, f, indent=2)
    state.save_to_json(os.path.join(directory, layout.STATE_FILE))


def check_layout(path: str, wanted: dict[str, Any] | None) -> None:
    """Refuse to resume from a checkpoint saved under another process layout.

    Args:
        path: The checkpoint.
        wanted: This job's layout (`_checkpoint_layout()`); None: nothing to check.

    Raises:
        ValueError: Naming both layouts, or saying that the checkpoint has none.
    """
    if wanted is None:
        return
    layout_path = os.path.join(path, layout.DISTRIBUTED_FILE)
    if not os.path.isfile(layout_path):
        raise ValueError(
            f"{path} was not written by a multi-process trainer (no {layout.DISTRIBUTED_FILE})"
        )
    with open(layout_path, encoding="utf-8") as f:
        saved = json.load(f)
    if saved != wanted:
        raise ValueError(
            f"{path} was saved with layout {saved}; this job is {wanted}. Resume with the "
            "same trainer, number of processes and parallel layout."
        )


def _load(path: str, name: str) -> Any:
    return torch.load(os.path.join(path, name), map_location="cpu", weights_only=True)


def load_shared_state(
    path: str, lr_scheduler: LRScheduler | None, state: TrainerState
) -> TrainerState:
    """Restore the schedule (unless None) and the run's progress into `state`; returns the
    saved state."""
    saved = TrainerState.load_from_json(os.path.join(path, layout.STATE_FILE))
    if lr_scheduler is not None:
        restore_lr_scheduler(
            lr_scheduler, _load(path, layout.SCHEDULER_FILE), saved.max_steps, state.max_steps,
            saved.global_step,
        )  # fmt: skip
    state.global_step = saved.global_step
    state.epoch = saved.epoch
    state.num_input_tokens_seen = saved.num_input_tokens_seen
    state.log_history = saved.log_history
    state.best_metric, state.best_model_checkpoint = saved.best_metric, saved.best_model_checkpoint
    return saved


def load_process_state(
    path: str, rank_file: Callable[[str], str], batches: BatchStream | None, rng: bool = True
) -> None:
    """Restore this process's data position (unless `batches` is None), then (last, just
    before the loop) its generators (unless not `rng`)."""
    if batches is not None:
        batches.load_state_dict(_load(path, rank_file(layout.DATALOADER_FILE)))
    if rng:
        set_rng_state(_load(path, rank_file(layout.RNG_FILE)))
