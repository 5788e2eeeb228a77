"""The original Forgather's checkpoint helpers, on our checkpoint layout.

- `save_checkpoint(output_dir, module)`: the weights as ``model.safetensors``
  (tied weights stored once), as our trainers write them.
- `load_checkpoint(model_dir, module, device)`: weights from a model or
  checkpoint directory: ``model.safetensors``, a sharded safetensors index,
  or a ``pytorch_model.bin``.
- `find_latest_checkpoint(model_dir)`: the newest checkpoint below
  ``model_dir`` (by step, our rule: ``forgather checkpoint`` and resuming use
  it too), or the model directory itself when it holds weights.
- `create_pretrained_symlinks(model_dir)`: ``model_dir/model.safetensors``
  linked to the newest checkpoint's weights, so `from_pretrained` loads them
  (what ``forgather checkpoint link`` does, without its fit check).

Differences: weights are always safetensors in one file (`safetensors=False`
and `max_shard_size` are accepted; sharded files are read, not written), and
"newest" is the highest step rather than the latest modification time.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch
from torch import nn

from forgather.ml import checkpoint_layout as layout
from forgather.ml.trainer.checkpoint import save_model_weights

__all__ = [
    "create_pretrained_symlinks",
    "find_latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

_INDEX = "model.safetensors.index.json"
_TORCH_FILE = "pytorch_model.bin"


def save_checkpoint(
    output_dir: str,
    module: nn.Module,
    metadata: dict[str, Any] | None = None,
    safetensors: bool = False,
    max_shard_size: int = 2**31,
    debug: bool = False,
    include_param_sharing: bool = True,
) -> None:
    """Write `module`'s weights to ``output_dir/model.safetensors`` (see the module docstring)."""
    os.makedirs(output_dir, exist_ok=True)
    save_model_weights(module, os.path.join(output_dir, layout.MODEL_FILE))
    if metadata:
        with open(os.path.join(output_dir, "checkpoint_metadata.json"), "w") as f:
            json.dump(metadata, f, indent=2, default=str)


def _has_weights(directory: str) -> bool:
    return any(
        os.path.isfile(os.path.join(directory, name))
        for name in (layout.MODEL_FILE, _INDEX, _TORCH_FILE)
    )


def load_checkpoint(
    model_dir: str, module: nn.Module, device: str | torch.device, strict: bool = True,
    assign: bool = False,
) -> None:  # fmt: skip
    """Load the weights in `model_dir` into `module` on `device`.

    Raises:
        FileNotFoundError: `model_dir` holds no weights file.
    """
    from safetensors.torch import load_file

    single = os.path.join(model_dir, layout.MODEL_FILE)
    index = os.path.join(model_dir, _INDEX)
    if os.path.isfile(single):
        state = load_file(single, device=str(device))
    elif os.path.isfile(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        state = {}
        for name in files:
            state.update(load_file(os.path.join(model_dir, name), device=str(device)))
    elif os.path.isfile(os.path.join(model_dir, _TORCH_FILE)):
        state = torch.load(
            os.path.join(model_dir, _TORCH_FILE), map_location=device, weights_only=True
        )
    else:
        raise FileNotFoundError(f"no model weights in {model_dir}")
    # Tied weights are stored once: the missing alias is filled by the tie itself.
    result = module.load_state_dict(state, strict=False, assign=assign)
    missing = [n for n in result.missing_keys if not _is_tied(module, n, state)]
    if strict and (missing or result.unexpected_keys):
        raise RuntimeError(
            f"loading {model_dir}: missing {missing}, unexpected {result.unexpected_keys}"
        )


def _is_tied(module: nn.Module, name: str, state: dict[str, torch.Tensor]) -> bool:
    """True if `name`'s tensor is the same tensor as one that was loaded."""
    tensors = module.state_dict(keep_vars=True)
    target = tensors[name]
    return any(tensors[k] is target for k in state if k in tensors and k != name)


def find_latest_checkpoint(model_dir: str) -> str | None:
    """The newest checkpoint below `model_dir` with weights; else `model_dir` if it has weights."""
    for checkpoint in layout.find_checkpoints(model_dir):
        if checkpoint.has_weights:
            return checkpoint.path
    return model_dir if _has_weights(model_dir) else None


def create_pretrained_symlinks(
    model_dir: str, force_overwrite: bool = False, dry_run: bool = False
) -> list[str]:
    """Link ``model_dir/model.safetensors`` to the newest checkpoint's weights.

    Returns:
        The links made (or that would be made, with `dry_run`).

    Raises:
        FileNotFoundError: No checkpoint with weights below `model_dir`.
        FileExistsError: ``model.safetensors`` is a real file and not `force_overwrite`.
    """
    newest = next((c for c in layout.find_checkpoints(model_dir) if c.has_weights), None)
    if newest is None:
        raise FileNotFoundError(f"no checkpoint with weights below {model_dir}")
    link = os.path.join(model_dir, layout.MODEL_FILE)
    if os.path.exists(link) and not os.path.islink(link) and not force_overwrite:
        raise FileExistsError(f"{link} is a real file; pass force_overwrite=True to replace it")
    if dry_run:
        logger.info("would link %s -> %s", link, newest.path)
        return [link]
    target = os.path.relpath(os.path.join(newest.path, layout.MODEL_FILE), model_dir)
    layout.mark_linked(newest.path, link)  # pruning keeps a linked checkpoint
    temporary = os.path.join(model_dir, f".{layout.MODEL_FILE}.link")
    if os.path.lexists(temporary):
        os.unlink(temporary)
    os.symlink(target, temporary)
    os.replace(temporary, link)
    return [link]
