"""Convert Hugging Face Llama-family and GPT-2 weights to Forgather's parameter names and back.

Forgather's Llama-style models use Llama's names below the layer level
(``self_attn.q_proj``, ``self_attn.q_norm``, ``mlp.gate_proj``,
``input_layernorm``), so a Llama, Mistral, Qwen2 or Qwen3 state dict needs one
rename. GPT-2 stores its projections as ``Conv1D``
(weights transposed) with queries, keys and values fused in ``c_attn``; they
are split and transposed into ``nn.Linear`` layout.

Decision a reader may question: conversion works on state dicts (name ->
tensor) and never builds a model, so a checkpoint can be converted shard by
shard without holding two models in memory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

_LLAMA_RENAMES = [
    (r"^model\.embed_tokens\.", "model.input_encoder.embed_tokens."),
]

_GPT2_RENAMES = [
    (r"^transformer\.wte\.", "model.input_encoder.embed_tokens."),
    (r"^transformer\.wpe\.", "model.input_encoder.positional_encoder.embedding."),
    (r"^transformer\.h\.(\d+)\.ln_1\.", r"model.layers.\1.input_layernorm."),
    (r"^transformer\.h\.(\d+)\.ln_2\.", r"model.layers.\1.post_attention_layernorm."),
    (r"^transformer\.h\.(\d+)\.attn\.c_proj\.", r"model.layers.\1.self_attn.o_proj."),
    (r"^transformer\.h\.(\d+)\.mlp\.c_fc\.", r"model.layers.\1.mlp.up_proj."),
    (r"^transformer\.h\.(\d+)\.mlp\.c_proj\.", r"model.layers.\1.mlp.down_proj."),
    (r"^transformer\.ln_f\.", "model.norm."),
]

# GPT-2's Conv1D modules, whose weights are (in_features, out_features).
_GPT2_CONV1D = re.compile(r"\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$")
_GPT2_C_ATTN = re.compile(r"^transformer\.h\.(\d+)\.attn\.c_attn\.(weight|bias)$")


def _rename(name: str, renames: list[tuple[str, str]]) -> str:
    for pattern, replacement in renames:
        new, count = re.subn(pattern, replacement, name)
        if count:
            return new
    return name


def convert_llama_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a ``LlamaForCausalLM`` state dict for a Forgather Llama-style model.

    Args:
        state_dict: Llama parameter names -> tensors.

    Returns:
        Forgather parameter names -> the same tensors.
    """
    return {_rename(name, _LLAMA_RENAMES): tensor for name, tensor in state_dict.items()}


def convert_gpt2_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert a ``GPT2LMHeadModel`` state dict for a Forgather GPT-2-style model.

    Args:
        state_dict: GPT-2 parameter names -> tensors. Attention-mask buffers
            (``attn.bias``, ``attn.masked_bias``) of old checkpoints are dropped.

    Returns:
        Forgather parameter names -> tensors in ``nn.Linear`` layout.
    """
    converted: dict[str, torch.Tensor] = {}
    for name, tensor in state_dict.items():
        if re.search(r"\.attn\.(bias|masked_bias)$", name):
            continue
        if _GPT2_CONV1D.search(name):
            tensor = tensor.t().contiguous()  # Conv1D (in, out) -> Linear (out, in)
        fused = _GPT2_C_ATTN.match(name)
        if fused:
            layer, kind = fused.groups()
            # Rows (out features) are [queries; keys; values].
            for proj, part in zip(
                ("q_proj", "k_proj", "v_proj"), tensor.chunk(3, dim=0), strict=True
            ):
                converted[f"model.layers.{layer}.self_attn.{proj}.{kind}"] = part.contiguous()
            continue
        converted[_rename(name, _GPT2_RENAMES)] = tensor
    return converted


def llama_state_dict_from_forgather(
    state_dict: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Rename a Forgather Llama-family state dict for ``LlamaForCausalLM`` (and Mistral, Qwen2/3).

    Args:
        state_dict: Forgather parameter names -> tensors.

    Returns:
        Hugging Face parameter names -> the same tensors.
    """
    prefix = "model.input_encoder.embed_tokens."
    return {
        ("model.embed_tokens." + name[len(prefix) :] if name.startswith(prefix) else name): tensor
        for name, tensor in state_dict.items()
    }


# The GPT-2 renames reversed: Forgather name pattern -> GPT-2 name.
_GPT2_FORWARD_BACK = [
    (r"^model\.input_encoder\.embed_tokens\.", "transformer.wte."),
    (r"^model\.input_encoder\.positional_encoder\.embedding\.", "transformer.wpe."),
    (r"^model\.layers\.(\d+)\.input_layernorm\.", r"transformer.h.\1.ln_1."),
    (r"^model\.layers\.(\d+)\.post_attention_layernorm\.", r"transformer.h.\1.ln_2."),
    (r"^model\.layers\.(\d+)\.self_attn\.o_proj\.", r"transformer.h.\1.attn.c_proj."),
    (r"^model\.layers\.(\d+)\.mlp\.up_proj\.", r"transformer.h.\1.mlp.c_fc."),
    (r"^model\.layers\.(\d+)\.mlp\.down_proj\.", r"transformer.h.\1.mlp.c_proj."),
    (r"^model\.norm\.", "transformer.ln_f."),
]


def gpt2_state_dict_from_forgather(
    state_dict: Mapping[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Convert a Forgather GPT-2-style state dict for ``GPT2LMHeadModel``.

    Args:
        state_dict: Forgather parameter names -> tensors in ``nn.Linear`` layout.

    Returns:
        GPT-2 parameter names -> tensors in ``Conv1D`` layout, with q/k/v fused into ``c_attn``.
    """
    converted: dict[str, torch.Tensor] = {}
    fused: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, tensor in state_dict.items():
        qkv = re.match(r"^model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$", name)
        if qkv:
            layer, part, kind = qkv.groups()
            fused.setdefault((layer, kind), {})[part] = tensor
            continue
        new = _rename(name, _GPT2_FORWARD_BACK)
        if _GPT2_CONV1D.search(new):
            tensor = tensor.t().contiguous()  # Linear (out, in) -> Conv1D (in, out)
        converted[new] = tensor
    for (layer, kind), parts in fused.items():
        tensor = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
        if kind == "weight":
            tensor = tensor.t().contiguous()
        converted[f"transformer.h.{layer}.attn.c_attn.{kind}"] = tensor
    return converted
