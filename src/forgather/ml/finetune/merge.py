"""Fold a LoRA adapter into its base model: one ordinary model directory.

    merge_lora("output_models/chat_lora", "output_models/chat")
    merge_lora("adapter/", "merged/", base_model="models/llama", dtype="bfloat16")

The result loads with ``AutoModelForCausalLM.from_pretrained`` without peft,
serves with ``forgather inf server`` and vLLM, and keeps the base's format: a
Forgather model stays a generated model directory (its code is copied), a
Hugging Face model stays one. The tokenizer comes from the adapter directory
when training saved one there (it carries the chat template training used),
else from the base.

Decision a reader may question: like ``forgather convert``, the merge checks
itself. The adapted model (base + adapter, in fp32) and the merged one are
run on the same tokens and their logits must agree within ``tolerance``
(relative to the largest logit); otherwise nothing is written. A merge that
silently changes the model would surface only later, as a worse chat model.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from forgather.ml.data.tokenizer import brings_own_code
from forgather.ml.file_modes import share_weights

from .lora import (
    ADAPTER_WEIGHTS_FILE,
    PEFT_PREFIX,
    read_adapter_config,
    require_peft,
)

#: Tokenizer files copied from the adapter directory (or the base).
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge_lora` did."""

    output_dir: str
    base_model: str
    merged_layers: int
    max_abs_diff: float  # logits of base+adapter vs merged, fp32
    tolerance: float  # the allowed difference, absolute (relative one x largest |logit|)


def _resolve_base(adapter_dir: str, recorded: str | None, given: str | None) -> str:
    """The base model directory: ``given``, else the recorded one (absolute, or relative to cwd)."""
    base = given or recorded
    if not base:
        raise ValueError(
            f"{adapter_dir}: adapter_config.json names no base model; pass the base model's directory"
        )
    if not os.path.isfile(os.path.join(base, "config.json")):
        raise FileNotFoundError(
            f"base model {base} (from {'the command line' if given else 'adapter_config.json'}) "
            "is not a model directory; pass the base model's directory"
        )
    return base


def _merge_layers(model: nn.Module) -> int:
    """Merge every LoRA layer into its base layer and put the base layer back in its place."""
    from peft.tuners.lora import LoraLayer

    merged = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, LoraLayer):
            continue
        module.merge(safe_merge=True)  # raises on NaN/inf instead of writing them
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.get_base_layer())
        merged += 1
    if hasattr(model, "peft_config"):
        del model.peft_config
    return merged


def _probe(model: nn.Module, vocab_size: int) -> torch.Tensor:
    """Logits for fixed pseudo-random tokens (2 x 24), fp32."""
    generator = torch.Generator().manual_seed(0)
    length = min(24, getattr(model.config, "max_position_embeddings", 24) or 24)
    ids = torch.randint(0, vocab_size, (2, length), generator=generator)
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def merge_lora(
    adapter_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    base_model: str | os.PathLike | None = None,
    dtype: str | None = None,
    tolerance: float = 1e-4,
) -> MergeResult:
    """Write base model + LoRA adapter as one model directory (see the module docstring).

    Args:
        adapter_dir: A directory with ``adapter_config.json`` and
            ``adapter_model.safetensors`` (what LoRA fine-tuning saves).
        output_dir: Where the merged model goes; must not exist.
        base_model: The base model directory (default: the one the adapter records).
        dtype: dtype of the saved weights (default: the base's ``config.dtype``, else float32).
        tolerance: allowed max |logit difference| relative to the largest |logit|.

    Raises:
        FileExistsError: ``output_dir`` exists.
        ValueError: the adapter does not fit the base, or the merged logits differ.
        ImportError: peft is missing (names the extra).
    """
    peft = require_peft()
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    adapter_dir, output_dir = os.fspath(adapter_dir), os.fspath(output_dir)
    if os.path.exists(output_dir):
        raise FileExistsError(f"{output_dir} exists; give a new directory for the merged model")
    recorded = read_adapter_config(adapter_dir).get("base_model_name_or_path")
    base = _resolve_base(adapter_dir, recorded, os.fspath(base_model) if base_model else None)

    trust = brings_own_code(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, trust_remote_code=trust)
    config = peft.LoraConfig.from_pretrained(adapter_dir)
    config.inference_mode = True
    peft.inject_adapter_in_model(config, model)
    saved = load_file(os.path.join(adapter_dir, ADAPTER_WEIGHTS_FILE))
    weights = {k.removeprefix(PEFT_PREFIX): v for k, v in saved.items()}
    loaded = peft.set_peft_model_state_dict(model, weights)
    missing = [k for k in loaded.missing_keys if "lora_" in k]
    if loaded.unexpected_keys or missing:
        raise ValueError(
            f"the adapter in {adapter_dir} does not fit the base model {base}: "
            f"unexpected {list(loaded.unexpected_keys)[:3]}, missing {missing[:3]}"
        )
    model.eval()

    vocab = model.get_input_embeddings().weight.shape[0]
    before = _probe(model, vocab)
    merged = _merge_layers(model)
    after = _probe(model, vocab)
    diff = (before - after).abs().max().item()
    allowed = tolerance * max(before.abs().max().item(), 1.0)
    if not diff <= allowed:
        raise ValueError(
            f"merged logits differ from base + adapter by {diff:.3g} (allowed {allowed:.3g}); "
            "nothing written"
        )

    target = dtype or getattr(model.config, "dtype", None) or "float32"
    target = getattr(torch, target) if isinstance(target, str) else target
    model.to(target)
    model.config.dtype = target
    os.makedirs(output_dir)
    try:
        model.save_pretrained(output_dir)
        share_weights(output_dir)
        if trust:  # a generated model: every source file of the base, not only modeling_*.py
            for source in Path(base).glob("*.py"):
                shutil.copy2(source, output_dir)
        for directory in (adapter_dir, base):
            names = [n for n in _TOKENIZER_FILES if os.path.isfile(os.path.join(directory, n))]
            if names:
                for name in names:
                    shutil.copy2(os.path.join(directory, name), output_dir)
                break
        generation = os.path.join(base, "generation_config.json")
        if os.path.isfile(generation) and not os.path.exists(
            os.path.join(output_dir, "generation_config.json")
        ):
            shutil.copy2(generation, output_dir)
    except BaseException:
        shutil.rmtree(output_dir, ignore_errors=True)
        raise
    return MergeResult(
        output_dir=output_dir,
        base_model=base,
        merged_layers=merged,
        max_abs_diff=diff,
        tolerance=allowed,
    )
