"""LoRA through ``peft``: adapters injected in place, saved in PEFT's own format.

    model = apply_lora(model, lora_config(r=8, lora_alpha=16))   # base frozen, adapters trainable
    save_adapter(model, model.state_dict(), "output_models/chat_lora")

The adapter directory holds ``adapter_config.json`` and
``adapter_model.safetensors`` exactly as ``peft.PeftModel.save_pretrained``
writes them, so ``PeftModel.from_pretrained(base, dir)`` (or vLLM's LoRA
support) reads it; :func:`forgather.ml.finetune.merge_lora` folds it into the
base weights.

Decision a reader may question: the adapters are injected into the model
(``peft.inject_adapter_in_model``) instead of wrapping it in a ``PeftModel``.
The model keeps its class, its ``config`` and its module names (a ``q_proj``
gains ``base_layer``/``lora_A``/``lora_B`` children), so every trainer treats
it like the model it was: Accelerate's FSDP shards the same layers, the
pipeline trainer cuts it at the same ``model.layers.N``, and checkpoints
resume into the same structure. Only writing the final model differs: the
trainers call :func:`save_adapter` for a model :func:`is_lora_model` accepts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from forgather.ml.file_modes import share_weights

#: What ``pip install`` needs for LoRA (the error message names it).
INSTALL_HINT = "pip install 'forgather[lora]'  (or: pip install peft)"
ADAPTER_CONFIG_FILE = "adapter_config.json"
ADAPTER_WEIGHTS_FILE = "adapter_model.safetensors"
#: PeftModel's names for the wrapped model's weights start with this.
PEFT_PREFIX = "base_model.model."
#: Our defaults; any other ``peft.LoraConfig`` field may be given too.
DEFAULTS: dict[str, Any] = {
    "r": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.0,
    "target_modules": "all-linear",
}


def require_peft() -> Any:
    """Import ``peft``, or fail with the command that installs it.

    Raises:
        ImportError: peft is not installed; the message names the extra.
    """
    try:
        import peft
    except ImportError as exc:
        raise ImportError(
            f"LoRA fine-tuning needs the optional package peft, which is not installed: "
            f"{INSTALL_HINT}"
        ) from exc
    return peft


def lora_config(**options: Any) -> Any:
    """A ``peft.LoraConfig`` with our defaults (r 8, alpha 16, every linear layer but the head).

    Args:
        **options: ``peft.LoraConfig`` fields (``r``, ``lora_alpha``, ``lora_dropout``,
            ``target_modules`` — a list of module names, a regex, or "all-linear" ...).
    """
    peft = require_peft()
    return peft.LoraConfig(**{**DEFAULTS, **options})


def _has_conv1d(model: nn.Module) -> bool:
    """GPT-2's projections are transformers' ``Conv1D`` (weight stored transposed)."""
    return any(type(m).__name__ == "Conv1D" for m in model.modules())


def apply_lora(model: nn.Module, config: Any = None) -> nn.Module:
    """Freeze ``model`` and inject LoRA adapters into it in place (see the module docstring).

    Args:
        model: A causal LM (Hugging Face or a generated Forgather model).
        config: A ``peft.LoraConfig``, a mapping of its fields (merged over
            :data:`DEFAULTS`), or None for the defaults.

    Returns:
        ``model`` itself; only the adapters' parameters require gradients.
    """
    peft = require_peft()
    if not isinstance(config, peft.LoraConfig):
        options = dict(config or {})
        if _has_conv1d(model):
            options.setdefault("fan_in_fan_out", True)  # else peft warns and sets it
        config = lora_config(**options)
    config.task_type = "CAUSAL_LM"
    config.base_model_name_or_path = getattr(model, "name_or_path", None) or None
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    model = peft.inject_adapter_in_model(config, model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise ValueError(
            f"LoRA target_modules {config.target_modules!r} matched no layer of "
            f"{type(model).__name__}"
        )
    return model


def is_lora_model(model: nn.Module) -> bool:
    """Whether ``model`` carries adapters injected by :func:`apply_lora`.

    A ``peft.PeftModel`` (``get_peft_model``) is not: it saves its adapter itself.
    """
    peft_class = type(model).__module__.split(".")[0] == "peft"
    return bool(getattr(model, "peft_config", None)) and not peft_class


def _skeleton(model: nn.Module) -> nn.Module:
    """The whole adapted model on the meta device (no memory), from ``model``'s class and config."""
    import copy

    peft = require_peft()
    # FSDP swaps the class for a subclass of (FSDPModule, original); a stage keeps the class.
    model_class = next(c for c in type(model).__mro__ if not c.__name__.startswith("FSDP"))
    with torch.device("meta"):
        full = model_class(model.config)
    return peft.inject_adapter_in_model(copy.deepcopy(model.peft_config["default"]), full)


def adapter_weights(
    model: nn.Module, weights: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The adapter's tensors of a full state dict, under PeftModel's names.

    Args:
        model: The adapted model (for its ``peft_config``).
        weights: Its full state dict (gathered from shards or stages if need be).
    """
    peft = require_peft()
    weights = dict(weights)
    held = {name for name in model.state_dict() if ".lora_" in name}
    if held != {name for name in weights if ".lora_" in name}:
        model = _skeleton(
            model
        )  # one pipeline stage: peft reads the adapters' places off the model
    adapter = peft.get_peft_model_state_dict(model, state_dict=weights)
    return {
        PEFT_PREFIX + name: tensor.detach().cpu().contiguous() for name, tensor in adapter.items()
    }


def save_adapter(model: nn.Module, weights: Mapping[str, torch.Tensor], output_dir: str) -> None:
    """Write the adapter of ``model`` (``weights``: its full state dict) in PEFT's format.

    ``adapter_config.json`` records the base model's path as it was loaded
    (``base_model_name_or_path``), which is where :func:`merge_lora` looks.
    """
    from safetensors.torch import save_file

    os.makedirs(output_dir, exist_ok=True)
    save_file(
        adapter_weights(model, weights),
        os.path.join(output_dir, ADAPTER_WEIGHTS_FILE),
        metadata={"format": "pt"},
    )
    model.peft_config["default"].save_pretrained(output_dir)
    share_weights(output_dir)


def read_adapter_config(adapter_dir: str) -> dict[str, Any]:
    """``adapter_config.json`` of ``adapter_dir`` as a dict (no peft needed)."""
    path = os.path.join(adapter_dir, ADAPTER_CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{adapter_dir} is not a LoRA adapter directory: no {ADAPTER_CONFIG_FILE}"
        )
    with open(path) as f:
        return json.load(f)
