"""Load a generated model directory, and write-then-load in one call.

Decision a reader may question: loading always goes through transformers'
``Auto*`` classes with ``trust_remote_code=True``, exactly as a user without
Forgather would, rather than importing the generated package directly. Every
model Forgather trains is therefore the same code path that ships.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel

from .writer import write_model


def has_weights(model_dir: str | Path) -> bool:
    """True if ``model_dir`` holds safetensors weights (one file or shards)."""
    model_dir = Path(model_dir)
    return (model_dir / "model.safetensors").is_file() or (
        model_dir / "model.safetensors.index.json"
    ).is_file()


def load_model(
    model_dir: str | Path,
    *,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    attn_implementation: str | None = None,
    from_weights: bool | None = None,
) -> PreTrainedModel:
    """Instantiate the causal LM in ``model_dir``.

    Args:
        model_dir: A generated model directory.
        dtype: Parameter dtype; default float32.
        device: Where to build; ``"meta"`` allocates nothing (inspection).
        attn_implementation: ``eager``, ``sdpa``, ... (default: transformers' choice).
        from_weights: Load saved weights (default: when the directory has
            them); False gives freshly initialised weights.

    Returns:
        The model, in eval mode when loaded from weights, train mode otherwise.
    """
    options: dict[str, Any] = {"trust_remote_code": True}
    if attn_implementation is not None:
        options["attn_implementation"] = attn_implementation
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    if from_weights is None:
        from_weights = has_weights(model_dir) and str(device) != "meta"
    if from_weights:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, **options)
        return model.to(device) if device is not None else model
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    with torch.device(device or "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, **options)
    return model


def build_model(
    output_dir: str | Path,
    builder_source: str,
    *,
    name: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    searchpath: Sequence[str | Path] | None = None,
    tokenizer=None,
    tp_plan: Mapping[str, str] | None = None,
    pp_plan: Mapping[str, Any] | None = None,
    source_name: str = "a model config",
    dtype: torch.dtype | str | None = None,
    device: torch.device | str | None = None,
    attn_implementation: str | None = None,
    from_weights: bool | None = False,
) -> PreTrainedModel:
    """Write the model directory (see :func:`write_model`) and return the model.

    Args:
        from_weights: False (default) returns a freshly initialised model;
            None loads saved weights when the directory has them.
        Others: as :func:`write_model` and :func:`load_model`.
    """
    write_model(
        output_dir,
        builder_source,
        name=name,
        hyperparameters=hyperparameters,
        searchpath=searchpath,
        tokenizer=tokenizer,
        tp_plan=tp_plan,
        pp_plan=pp_plan,
        source_name=source_name,
    )
    return load_model(
        output_dir,
        dtype=dtype,
        device=device,
        attn_implementation=attn_implementation,
        from_weights=from_weights,
    )
