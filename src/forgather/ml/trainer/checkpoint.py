"""Checkpoint files on disk: atomic directories, discovery, pruning, RNG state, weights.

A checkpoint is a directory `<output_dir>/checkpoints/checkpoint-<step>/` holding
`model.safetensors`, `optimizer.pt`, `scheduler.pt`, `rng_state.pt`,
`dataloader_state.pt` and `trainer_state.json`. What goes in it is the
trainer's business; this module only makes it safe (RNG states: `rng.py`).

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
import os
import shutil
from collections.abc import Iterator

import torch
from safetensors.torch import load_model, save_model

# File names and discovery are shared with the CLI and the server (a torch-free
# module); the trainers read the names as ckpt.MODEL_FILE and ckpt.STATE_FILE.
from forgather.ml.checkpoint_layout import MODEL_FILE as MODEL_FILE
from forgather.ml.checkpoint_layout import STATE_FILE as STATE_FILE
from forgather.ml.checkpoint_layout import is_linked, latest_checkpoint, list_checkpoints

__all__ = [
    "atomic_directory",
    "latest_checkpoint",
    "list_checkpoints",
    "load_model_weights",
    "prune_checkpoints",
    "save_model_weights",
]

OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
RNG_FILE = "rng_state.pt"
DATALOADER_FILE = "dataloader_state.pt"
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


def prune_checkpoints(checkpoints_dir: str, keep: int) -> list[str]:
    """Delete all but the `keep` newest checkpoints; return the deleted paths.

    A checkpoint that `forgather checkpoint link` points the model directory at
    is kept as well (`is_linked`): deleting it would leave the link dangling.
    """
    doomed = list_checkpoints(checkpoints_dir)[:-keep] if keep > 0 else []
    doomed = [path for path in doomed if not is_linked(path)]
    for path in doomed:
        parent, name = os.path.split(path)
        trash = os.path.join(parent, f"{_TRASH_PREFIX}{name}-{os.getpid()}")
        os.rename(path, trash)  # disappears as a whole before it is half deleted
        _remove_quietly(trash)
    return doomed


def save_model_weights(model: torch.nn.Module, path: str) -> None:
    """Save the model's state dict as safetensors; tied weights are stored once."""
    save_model(model, path, metadata={"format": "pt"})


def load_model_weights(model: torch.nn.Module, path: str) -> None:
    """Load weights saved by `save_model_weights` (strict: every key must match)."""
    device = next(model.parameters()).device
    load_model(model, path, strict=True, device=str(device))
