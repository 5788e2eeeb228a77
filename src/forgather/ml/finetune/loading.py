"""Load a local pretrained causal LM for fine-tuning (full, or LoRA).

    model = load_pretrained("models/llama")                      # full fine-tuning
    model = load_pretrained("output_models/llama_fg", lora={"r": 16, "lora_alpha": 32})

Any directory ``AutoModelForCausalLM.from_pretrained`` reads works: a
Hugging Face model (Llama, Mistral, Qwen2/3, GPT-2 ...) or a Forgather model
directory (``forgather convert``, or one Forgather trained), whose own code
is loaded (``trust_remote_code``, as ``forgather inf server`` does).

Decision a reader may question: a plain transformers model gets a forward
pre-hook (:func:`attend_within_documents`) rather than a different collator.
Our chat and text datasets pack several documents into one row with
``position_ids`` restarting at each; transformers' models separate them only
when ``attention_mask`` is absent and no KV cache is built, while the
collator always sends one. The hook drops a right-padding mask (padding has
position 0, so it is a document of its own) and turns the cache off, for
training and evaluation calls only (never when a cache is passed, as
``generate`` does). Forgather's
own models build their masks from ``position_ids`` and need no hook.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

# `load_tokenizer` is part of this package's API (the fine-tune template calls it here).
from forgather.ml.data.tokenizer import brings_own_code
from forgather.ml.data.tokenizer import load_tokenizer as load_tokenizer


def _drop_unneeded_mask(
    module: nn.Module, args: tuple, kwargs: dict[str, Any]
) -> tuple[tuple, dict[str, Any]] | None:
    """Forward pre-hook: a right-padded 2-D mask with ``position_ids`` and no cache -> no mask.

    Without the mask, transformers starts a new document wherever
    ``position_ids`` do not step by one. Right padding (the collator's) has
    position 0, so every padding token is a document of its own, which no
    real token sees (attention is causal) and which carries no loss.
    """
    mask = kwargs.get("attention_mask")
    if mask is None or kwargs.get("position_ids") is None:
        return None
    if kwargs.get("past_key_values") is not None or kwargs.get("cache") is not None:
        return None  # generation: the mask describes the cache too
    if mask.dim() != 2 or not bool((mask.cummin(dim=-1).values == mask).all()):
        return None  # left padding or holes: keep the mask
    return args, {**kwargs, "attention_mask": None, "use_cache": False}


def attend_within_documents(model: nn.Module) -> nn.Module:
    """Make a transformers causal LM keep packed documents apart (see the module docstring).

    Returns:
        ``model``, with the hook registered (once).
    """
    if not getattr(model, "_forgather_packed_hook", False):
        model.register_forward_pre_hook(_drop_unneeded_mask, with_kwargs=True)
        model._forgather_packed_hook = True
    return model


def load_pretrained(
    model_path: str | os.PathLike,
    *,
    lora: Mapping[str, Any] | Any | None = None,
    dtype: str | torch.dtype | None = "float32",
    attn_implementation: str | None = None,
) -> nn.Module:
    """The causal LM in ``model_path``, ready to train (train mode; LoRA applied if asked).

    Args:
        model_path: A local model directory (Hugging Face or Forgather).
        lora: None for full fine-tuning; else LoRA options (a mapping of
            ``peft.LoraConfig`` fields over r 8, alpha 16, dropout 0, every linear
            layer but the head), or a ``peft.LoraConfig``. Needs ``peft``
            (``pip install 'forgather[lora]'``).
        dtype: Weights' dtype ("float32" by default: the trainer's bf16 is autocast
            over fp32 weights; "auto" keeps the checkpoint's; None is transformers').
        attn_implementation: "eager", "sdpa", ... (default: transformers' choice).

    Raises:
        FileNotFoundError: ``model_path`` has no ``config.json``.
        ImportError: LoRA was asked for and peft is missing (names the extra).
    """
    from transformers import AutoModelForCausalLM

    path = os.path.abspath(os.fspath(model_path))
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{model_path} is not a model directory: no config.json")
    if lora is not None:
        from .lora import require_peft

        require_peft()  # before the (possibly long) load
    options: dict[str, Any] = {"trust_remote_code": brings_own_code(path)}
    if attn_implementation is not None:
        options["attn_implementation"] = attn_implementation
    if isinstance(dtype, str) and dtype != "auto":
        dtype = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **options)
    if type(model).__module__.startswith("transformers."):
        attend_within_documents(model)
    if lora is not None:
        from .lora import apply_lora

        model = apply_lora(model, lora)
    return model.train()
