"""Model and optimizer state of a data-parallel job (DDP or FSDP): save, load, shard.

Two formats, chosen by `sharded`:

- **full** (default): the weights gathered on rank 0 and written as one
  `model.safetensors`, exactly what the single-process `Trainer` writes (so
  `forgather checkpoint link` and the inference server read it), and the
  optimizer state keyed by parameter name in `optimizer.pt`;
- **sharded**: each rank writes its own shard of both with
  `torch.distributed.checkpoint` into `sharded/`; nothing is gathered, which is
  what a model too large for one process's memory needs.

Both go through `torch.distributed.checkpoint.state_dict`, which gives the
same parameter names for a plain module, a DDP wrapper and an FSDP2 module.

The decision a reader may question: tied weights (a head sharing the
embedding) are written once, under the name safetensors' own `save_model`
keeps (the alphabetically first of the names sharing the tensor), and filled
back in on load, so a full checkpoint of this module and of `Trainer` are
byte-for-byte the same format.
"""

from __future__ import annotations

import os
from collections import defaultdict

import torch
import torch.distributed.checkpoint as dcp
from safetensors.torch import load_file, save_file
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.optim import Optimizer

from forgather.ml import checkpoint_layout as layout
from forgather.ml.file_modes import share_weights

__all__ = [
    "apply_fsdp",
    "full_model_state_dict",
    "load_model_and_optimizer",
    "save_full_model",
    "save_full_weights",
    "save_model_and_optimizer",
    "shard_units",
]

SHARDED_DIR = "sharded"
_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules FSDP shards one by one: the decoder layers.

    A layer is a module whose class is named in some `_no_split_modules`
    (Hugging Face's list of blocks that must stay whole); without such a list,
    the items of every `nn.ModuleList`.
    """
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    if names:
        return [m for m in model.modules() if type(m).__name__ in names]
    return [item for m in model.modules() if isinstance(m, nn.ModuleList) for item in m]


def apply_fsdp(model: nn.Module, mesh: DeviceMesh, reshard_after_forward: bool = True) -> None:
    """Shard `model` in place with FSDP2: each decoder layer, then the rest as the root.

    Args:
        model: Already on its device.
        mesh: A 1-d mesh over the data-parallel ranks.
        reshard_after_forward: Free gathered layer weights after forward (and
            gather again in backward): less memory, more communication.
    """
    for unit in shard_units(model):
        fully_shard(unit, mesh=mesh, reshard_after_forward=reshard_after_forward)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward)


def _tied_groups(model: nn.Module) -> list[list[str]]:
    """Names that share one parameter, each group sorted (the first is the one kept)."""
    by_param: dict[int, list[str]] = defaultdict(list)
    for name, param in model.named_parameters(remove_duplicate=False):
        by_param[id(param)].append(name)
    return [sorted(names) for names in by_param.values() if len(names) > 1]


def full_model_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight, gathered to CPU on rank 0 (other ranks get `{}`); a collective."""
    return get_model_state_dict(model, options=_FULL)


def save_full_weights(state: dict[str, torch.Tensor], module: nn.Module, path: str) -> None:
    """Write a full state dict as safetensors, tied weights once (see the module docstring).

    Args:
        state: From `full_model_state_dict`.
        module: The unwrapped model, to find tied weights.
        path: The `.safetensors` file.
    """
    state = dict(state)
    for names in _tied_groups(module):
        for name in names[1:]:
            state.pop(name, None)
    save_file({k: v.contiguous() for k, v in state.items()}, path, metadata={"format": "pt"})
    share_weights(path)


def _load_full_weights(module: nn.Module, path: str) -> dict[str, torch.Tensor]:
    state = load_file(path)
    for names in _tied_groups(module):
        kept = next((n for n in names if n in state), None)
        for name in names:
            if kept is not None and name not in state:
                state[name] = state[kept]
    return state


def save_model_and_optimizer(
    model: nn.Module,
    module: nn.Module,
    optimizer: Optimizer,
    directory: str,
    sharded: bool,
    is_main_process: bool,
) -> None:
    """Write the model and optimizer state into a checkpoint directory; call on every rank.

    Args:
        model: What trains (a DDP wrapper, an FSDP2 module or a plain module).
        module: The unwrapped model (to find tied weights).
        optimizer: Its optimizer.
        directory: The checkpoint's (temporary) directory, shared by all ranks.
        sharded: Each rank writes its shards (`sharded/`) instead of rank 0 the whole.
        is_main_process: True on the rank that writes the full files.
    """
    if sharded:
        state = {
            "model": get_model_state_dict(model),
            "optimizer": get_optimizer_state_dict(model, optimizer),
        }
        dcp.save(state, checkpoint_id=os.path.join(directory, SHARDED_DIR))
        return
    weights = full_model_state_dict(model)
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=_FULL)
    if is_main_process:
        save_full_weights(weights, module, os.path.join(directory, layout.MODEL_FILE))
        torch.save(optimizer_state, os.path.join(directory, layout.OPTIMIZER_FILE))


def load_model_and_optimizer(
    model: nn.Module, module: nn.Module, optimizer: Optimizer, directory: str, sharded: bool
) -> None:
    """Restore what `save_model_and_optimizer` wrote; call on every rank.

    Every rank reads the files, so the checkpoint must be on a file system all
    ranks see (as for any resumable multi-node job).
    """
    if sharded:
        state = {
            "model": get_model_state_dict(model),
            "optimizer": get_optimizer_state_dict(model, optimizer),
        }
        dcp.load(state, checkpoint_id=os.path.join(directory, SHARDED_DIR))
        set_model_state_dict(model, state["model"])
        set_optimizer_state_dict(model, optimizer, state["optimizer"])
        return
    options = StateDictOptions(full_state_dict=True)
    weights = _load_full_weights(module, os.path.join(directory, layout.MODEL_FILE))
    set_model_state_dict(model, weights, options=options)
    optimizer_state = torch.load(
        os.path.join(directory, layout.OPTIMIZER_FILE), map_location="cpu", weights_only=True
    )
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)


def save_full_model(model: nn.Module, weights: dict[str, torch.Tensor], output_dir: str) -> None:
    """Write full weights as a model directory: `save_pretrained` for a Hugging Face model.

    The model is rebuilt on the meta device (no memory) from its class and
    config and given `weights`, so it does not matter that `model` itself is
    sharded or is one pipeline stage: Hugging Face then writes the config,
    the generation config and (for a generated model) its source files as for
    any model, and the strict load proves that `weights` holds every weight.
    Any other module gets a bare `model.safetensors`.

    Args:
        model: The model (or an FSDP-wrapped or pruned copy of it).
        weights: Every weight, by the unsplit, unwrapped model's names.
        output_dir: The directory to write.
    """
    os.makedirs(output_dir, exist_ok=True)
    if getattr(model, "peft_config", None) is not None:
        from forgather.ml.finetune.lora import is_lora_model, save_adapter

        if is_lora_model(model):  # LoRA (forgather.ml.finetune): the adapter only
            save_adapter(model, weights, output_dir)
            return
    config = getattr(model, "config", None)
    # fully_shard swaps the class for a subclass of (FSDPModule, original class).
    model_class = next(c for c in type(model).__mro__ if not issubclass(c, FSDPModule))
    if config is None or not hasattr(model_class, "save_pretrained"):
        save_full_weights(weights, model, os.path.join(output_dir, layout.MODEL_FILE))
        return
    with torch.device("meta"):
        full = model_class(config)
    full.load_state_dict(weights, strict=True, assign=True)
    full.save_pretrained(output_dir)
    share_weights(output_dir)
