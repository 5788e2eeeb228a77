"""Checkpoint directories made safe: atomic writes, pruning, and the weights file.

What a checkpoint holds and what its files are called is the trainer's business
(`BaseTrainer._save_checkpoint`) and the layout module's
(`forgather.ml.checkpoint_layout`: names, listing, "newest"); this module only
makes writing and deleting them safe (RNG states: `rng.py`).

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

from forgather.ml.checkpoint_layout import is_linked, list_checkpoints

__all__ = [
    "atomic_directory",
    "load_model_weights",
    "prune_checkpoints",
    "save_model_weights",
]

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
