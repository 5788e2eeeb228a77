"""Find and load what the server serves: a model directory or its newest checkpoint.

    model, tokenizer = load_for_serving("output_models/tiny_llama", checkpoint=True)

A model directory is anything ``AutoModelForCausalLM.from_pretrained`` reads
(a generated Forgather model with its code, or a plain transformers one). A
trainer checkpoint (``.../checkpoint-<step>/``) may hold only weights
(``model.safetensors``, possibly sharded); then the model is built from the
model directory and the checkpoint's weights are loaded into it.

Decision a reader may question: "newest checkpoint" means the highest step
number among all ``checkpoint-<step>`` directories below the model directory
(any run), ties broken by modification time, because the step is what a user
reads in the training log; a directory's mtime changes when it is copied.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import torch

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
_DTYPES = {
    "auto": "auto",
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
# Config attributes that name the longest sequence a model was built for, by preference.
_CONTEXT_ATTRIBUTES = (
    "max_position_embeddings",
    "max_sequence_length",
    "max_seq_len",
    "n_positions",
    "seq_length",
)
DEFAULT_CONTEXT_LENGTH = 2048


def newest_checkpoint(model_dir: str) -> str:
    """The ``checkpoint-<step>`` directory with the highest step below ``model_dir``.

    Raises:
        FileNotFoundError: If there is none with weights.
    """
    found = []
    for root, dirs, _files in os.walk(model_dir):
        for name in dirs:
            match = _CHECKPOINT.match(name)
            path = os.path.join(root, name)
            if match and any(os.path.exists(os.path.join(path, f)) for f in _WEIGHT_FILES):
                found.append((int(match.group(1)), os.path.getmtime(path), path))
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # skip temp/trash dirs
    if not found:
        raise FileNotFoundError(f"no checkpoint-<step> directory with weights under {model_dir}")
    return max(found)[2]


def _load_checkpoint_weights(model: torch.nn.Module, checkpoint_dir: str) -> None:
    """Load a weights-only checkpoint into ``model`` (tied weights may be stored once)."""
    from safetensors.torch import load_file

    index_file = os.path.join(checkpoint_dir, "model.safetensors.index.json")
    if os.path.exists(index_file):
        with open(index_file) as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = ["model.safetensors"]
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(load_file(os.path.join(checkpoint_dir, shard)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {name for name, _ in _tied_parameter_names(model)}
    really_missing = [name for name in missing if name not in tied]
    if really_missing or unexpected:
        raise ValueError(
            f"checkpoint {checkpoint_dir} does not match the model: missing {really_missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )


def _tied_parameter_names(model: torch.nn.Module) -> list[tuple[str, str]]:
    """(name, first name) of parameters that share storage with an earlier one."""
    first_name: dict[int, str] = {}
    tied = []
    for name, param in model.named_parameters(remove_duplicate=False):
        key = id(param)
        if key in first_name:
            tied.append((name, first_name[key]))
        else:
            first_name[key] = name
    return tied


def load_for_serving(
    path: str,
    checkpoint: bool = False,
    device: str = "cpu",
    dtype: str = "auto",
    chat_template_file: str | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer, ready for inference.

    Args:
        path: The model directory.
        checkpoint: Load the newest checkpoint below ``path`` (see
            :func:`newest_checkpoint`).
        device: ``cpu``, ``cuda``, ``cuda:1``, ...
        dtype: ``auto`` (as saved), ``float32``, ``bfloat16`` or ``float16``.
        chat_template_file: A Jinja chat template replacing the tokenizer's.

    Returns:
        (model in eval mode on ``device``, tokenizer).

    Raises:
        ValueError: For an unknown dtype or a checkpoint that does not fit.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in _DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {sorted(_DTYPES)}")
    weights_dir = newest_checkpoint(path) if checkpoint else path
    self_contained = os.path.exists(os.path.join(weights_dir, "config.json"))
    model = AutoModelForCausalLM.from_pretrained(
        weights_dir if self_contained else path, dtype=_DTYPES[dtype], trust_remote_code=True
    )
    if not self_contained:
        _load_checkpoint_weights(model, weights_dir)
    has_tokenizer = os.path.exists(os.path.join(weights_dir, "tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(
        weights_dir if has_tokenizer else path, trust_remote_code=True
    )
    if chat_template_file is not None:
        with open(chat_template_file, encoding="utf-8") as f:
            tokenizer.chat_template = f.read()
    return model.to(device).eval(), tokenizer


def context_length(model: Any, tokenizer: Any) -> int:
    """The longest sequence (prompt + completion) the model accepts, in tokens."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
    for attribute in _CONTEXT_ATTRIBUTES:
        value = getattr(config or model.config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a limit report a huge sentinel (int(1e30)).
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return DEFAULT_CONTEXT_LENGTH
