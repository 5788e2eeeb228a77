"""Which Hugging Face architectures map onto Forgather's components, and how.

* :func:`forgather_hyperparameters`: a transformers config (Llama, Mistral,
  Qwen2, Qwen3, GPT-2) -> the builder family and ``config.json`` values of the
  Forgather model that computes the same function;
* :func:`hf_config_for`: a loaded Forgather model -> the transformers config
  of the same model, read from the model's *modules* (norm types, biases,
  QK-norm, rotary parameters, sliding window, tied head), so a model defined by
  any config, not only one converted from Hugging Face, converts back when its
  architecture maps.

Decision a reader may question: a feature that either side cannot express is
an :class:`UnsupportedFeatureError` naming it, never an approximation. A
Qwen2 checkpoint with per-layer sliding windows converted as full attention
would load, generate plausible text and be a different model.
"""

from __future__ import annotations

from typing import Any

from torch import nn

#: Hugging Face ``model_type`` -> builder family (``builders.BUILDERS``).
HF_FAMILIES = {
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "qwen3": "llama",
    "gpt2": "gpt2",
}

_ROPE_TYPES = ("default", "linear", "llama3", "dynamic", "yarn")


class UnsupportedFeatureError(ValueError):
    """A model feature the other format (or Forgather's components) cannot express."""


def _rope_parameters(config) -> dict[str, Any]:
    rope = dict(getattr(config, "rope_parameters", None) or {})
    # A per-layer-type dict ({"full_attention": {...}, ...}) is Gemma-style; not ours.
    if rope and all(isinstance(v, dict) for v in rope.values()):
        raise UnsupportedFeatureError("per-layer-type RoPE parameters are not supported")
    rope.setdefault("rope_type", rope.pop("type", "default"))
    rope.setdefault("rope_theta", getattr(config, "rope_theta", None) or 10000.0)
    rope_type = rope["rope_type"]
    if rope_type not in _ROPE_TYPES:
        raise UnsupportedFeatureError(
            f"RoPE type {rope_type!r} is not supported (supported: {', '.join(_ROPE_TYPES)})"
        )
    if rope.get("partial_rotary_factor", 1.0) != 1.0:
        raise UnsupportedFeatureError(
            "partial rotary embeddings (partial_rotary_factor) are not supported"
        )
    if rope_type == "yarn" and rope.get("factor") is None:
        rope["factor"] = config.max_position_embeddings / rope["original_max_position_embeddings"]
    return rope


def _sliding_window(config) -> int | None:
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if layer_types is None:
        return window
    kinds = set(layer_types)
    if not kinds <= {"full_attention", "sliding_attention"}:
        raise UnsupportedFeatureError(f"layer types {sorted(kinds)} are not supported")
    if kinds == {"full_attention"}:
        return None
    if kinds == {"sliding_attention"}:
        return window
    raise UnsupportedFeatureError(
        "per-layer sliding windows (layer_types mixing sliding and full attention, "
        "e.g. Qwen use_sliding_window with max_window_layers) are not supported"
    )


def _token_ids(config) -> dict[str, Any]:
    return {
        key: getattr(config, key)
        for key in ("bos_token_id", "eos_token_id", "pad_token_id")
        if getattr(config, key, None) is not None
    }


def _llama_family(config) -> dict[str, Any]:
    model_type = config.model_type
    if getattr(config, "hidden_act", "silu") != "silu":
        raise UnsupportedFeatureError(f"hidden_act {config.hidden_act!r} (only 'silu' maps)")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    attention_bias = bool(getattr(config, "attention_bias", False))
    values = {
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads or config.num_attention_heads,
        "head_dim": head_dim,
        "num_hidden_layers": config.num_hidden_layers,
        "max_position_embeddings": config.max_position_embeddings,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_parameters": _rope_parameters(config),
        # Qwen2 has biases on q/k/v but not on the output projection.
        "attention_bias": attention_bias and model_type != "qwen2",
        "qkv_bias": True if model_type == "qwen2" else attention_bias,
        "mlp_bias": bool(getattr(config, "mlp_bias", False)),
        "qk_norm": model_type == "qwen3",
        "sliding_window": _sliding_window(config),
        "attention_dropout": float(getattr(config, "attention_dropout", 0.0) or 0.0),
        "initializer_range": getattr(config, "initializer_range", 0.02),
        "tie_word_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
    }
    if values["sliding_window"] is not None:
        # vLLM and transformers' cache read the window per layer from layer_types.
        values["layer_types"] = ["sliding_attention"] * config.num_hidden_layers
    return values


def _gpt2(config) -> dict[str, Any]:
    for flag, wanted in (
        ("scale_attn_weights", True),
        ("scale_attn_by_inverse_layer_idx", False),
        ("add_cross_attention", False),
    ):
        if bool(getattr(config, flag, wanted)) != wanted:
            raise UnsupportedFeatureError(f"GPT-2 {flag}={not wanted} is not supported")
    activation = config.activation_function
    if activation not in ("gelu_new", "gelu_pytorch_tanh", "gelu", "relu"):
        raise UnsupportedFeatureError(f"GPT-2 activation_function {activation!r} is not supported")
    return {
        "vocab_size": config.vocab_size,
        "hidden_size": config.n_embd,
        "intermediate_size": config.n_inner or 4 * config.n_embd,
        "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_head,
        "head_dim": config.n_embd // config.n_head,
        "num_hidden_layers": config.n_layer,
        "max_position_embeddings": config.n_positions,
        "layer_norm_eps": config.layer_norm_epsilon,
        "activation_function": activation,
        "embd_pdrop": config.embd_pdrop,
        "resid_pdrop": config.resid_pdrop,
        "attn_pdrop": config.attn_pdrop,
        "initializer_range": config.initializer_range,
        "tie_word_embeddings": bool(getattr(config, "tie_word_embeddings", True)),
    }


def forgather_hyperparameters(config, max_length: int | None = None) -> tuple[str, dict[str, Any]]:
    """The builder family and hyperparameters of the Forgather twin of a transformers config.

    Args:
        config: A transformers config of a supported ``model_type`` (:data:`HF_FAMILIES`).
        max_length: New ``max_position_embeddings`` (a GPT-2 may only shrink).

    Returns:
        (family, values for ``config.json``), including ``hf_model_type`` and the
        special token ids.

    Raises:
        UnsupportedFeatureError: For an unsupported ``model_type`` or feature.
    """
    model_type = config.model_type
    family = HF_FAMILIES.get(model_type)
    if family is None:
        raise UnsupportedFeatureError(
            f"model type {model_type!r} is not supported (supported: {', '.join(HF_FAMILIES)})"
        )
    values = _gpt2(config) if family == "gpt2" else _llama_family(config)
    if max_length:
        if family == "gpt2" and max_length > values["max_position_embeddings"]:
            raise UnsupportedFeatureError(
                f"GPT-2 has learned positions for {values['max_position_embeddings']} tokens; "
                f"--max-length {max_length} would need new ones"
            )
        values["max_position_embeddings"] = max_length
    return family, {**values, **_token_ids(config), "hf_model_type": model_type}


# -- Forgather model -> transformers config ------------------------------------------------


def _only(values: set, what: str):
    if len(values) != 1:
        raise UnsupportedFeatureError(f"layers differ in {what} ({sorted(map(str, values))})")
    return next(iter(values))


def _rope_of(rotary: nn.Module) -> dict[str, Any]:
    if getattr(rotary, "rope_parameters", None):
        return dict(rotary.rope_parameters)
    if getattr(rotary, "llama3_scaling", None):
        return {"rope_type": "llama3", "rope_theta": rotary.rope_theta, **rotary.llama3_scaling}
    return {"rope_type": "default", "rope_theta": rotary.rope_theta}


def _structure(model: nn.Module) -> dict[str, Any]:
    """What a Forgather causal LM is made of, as plain values; raises for what cannot map."""
    base = model.model
    encoder = base.input_encoder
    if getattr(encoder, "scale", 1.0) != 1.0:
        raise UnsupportedFeatureError(
            "scaled token embeddings (scale_embeddings) have no Hugging Face equivalent"
        )
    positions = encoder.positional_encoder
    layers = list(base.layers)
    kinds = {type(layer).__name__ for layer in layers}
    if _only(kinds, "layer type") != "PreLNLayer":
        raise UnsupportedFeatureError(
            f"{kinds.pop()} layers have no Hugging Face equivalent (pre-norm only)"
        )
    attns = [layer.self_attn for layer in layers]
    mlps = [layer.mlp for layer in layers]
    if any(getattr(a, "alibi", None) is not None for a in attns):
        raise UnsupportedFeatureError("ALiBi attention has no supported Hugging Face equivalent")
    first, mlp = attns[0], mlps[0]
    norm_kind = _only({type(layer.input_layernorm).__name__ for layer in layers}, "norm type")
    eps = _only({layer.input_layernorm.eps for layer in layers}, "norm eps")
    act = mlp.act
    info = {
        "vocab_size": encoder.embed_tokens.num_embeddings,
        "hidden_size": encoder.embed_tokens.embedding_dim,
        "head_dim": first.head_dim,
        "num_attention_heads": first.q_proj.out_features // first.head_dim,
        "num_key_value_heads": first.k_proj.out_features // first.head_dim,
        "num_hidden_layers": len(layers),
        "intermediate_size": mlp.up_proj.out_features,
        "norm": norm_kind,
        "eps": eps,
        "mlp": _only({type(m).__name__ for m in mlps}, "feed-forward type"),
        "act": type(act).__name__,
        "gelu_approximate": getattr(act, "approximate", None),
        "attention_bias": _only({a.o_proj.bias is not None for a in attns}, "output bias"),
        "qkv_bias": _only({a.q_proj.bias is not None for a in attns}, "q/k/v bias"),
        "mlp_bias": _only({m.up_proj.bias is not None for m in mlps}, "MLP bias"),
        "qk_norm": _only({a.q_norm is not None for a in attns}, "QK-norm"),
        "sliding_window": _only({a.sliding_window for a in attns}, "sliding window"),
        "attention_dropout": first.dropout,
        "positions": type(positions).__name__ if positions is not None else None,
        "rotary": first.rotary,
        "tied": model.lm_head.weight is encoder.embed_tokens.weight,
    }
    if info["qk_norm"] and type(first.q_norm).__name__ != "RMSNorm":
        raise UnsupportedFeatureError(
            f"QK-norm with {type(first.q_norm).__name__} is not supported"
        )
    if positions is not None:
        info["n_positions"] = (
            positions.embedding.num_embeddings if hasattr(positions, "embedding") else None
        )
    return info


def infer_hf_model_type(info: dict[str, Any]) -> str:
    """The transformers architecture that has exactly the features in ``info``."""
    if info["positions"] == "LearnedPositionalEncoding":
        return "gpt2"
    if info["qk_norm"]:
        return "qwen3"
    if info["qkv_bias"] and not info["attention_bias"]:
        return "qwen2"
    if info["sliding_window"] is not None:
        return "mistral"
    return "llama"


def _check_llama_family(info: dict[str, Any], model_type: str) -> None:
    problems = []
    if info["positions"] is not None:
        problems.append(f"absolute positions ({info['positions']})")
    if info["rotary"] is None:
        problems.append("no rotary embeddings")
    if info["norm"] != "RMSNorm":
        problems.append(f"{info['norm']} norms (RMSNorm expected)")
    if info["mlp"] != "GatedMLP" or info["act"] != "SiLU":
        problems.append(f"{info['mlp']} with {info['act']} (SwiGLU expected)")
    qkv, out = info["qkv_bias"], info["attention_bias"]
    if model_type == "qwen2":
        if not qkv or out:
            problems.append("Qwen2 needs q/k/v biases and no output bias")
    elif qkv != out:
        problems.append("q/k/v biases without an output bias (that is Qwen2)")
    if info["qk_norm"] != (model_type == "qwen3"):
        problems.append(
            "QK-norm (only Qwen3 has it)" if info["qk_norm"] else "no QK-norm (Qwen3 has it)"
        )
    if info["sliding_window"] is not None and model_type not in ("mistral", "qwen2", "qwen3"):
        problems.append(f"a sliding window ({model_type} has none)")
    if model_type == "mistral" and (qkv or out):
        problems.append("attention biases (Mistral has none)")
    if info["mlp_bias"] and model_type != "llama":
        problems.append(f"MLP biases ({model_type} has none)")
    if problems:
        raise UnsupportedFeatureError(
            f"the model cannot be expressed as {model_type}: " + "; ".join(problems)
        )


def _check_gpt2(info: dict[str, Any]) -> None:
    problems = []
    if info["norm"] != "LayerNorm":
        problems.append(f"{info['norm']} norms (LayerNorm expected)")
    if info["mlp"] != "MLP" or info["act"] not in ("GELU", "ReLU"):
        problems.append(f"{info['mlp']} with {info['act']} (a GELU MLP expected)")
    if not (info["qkv_bias"] and info["attention_bias"] and info["mlp_bias"]):
        problems.append("projections without biases")
    if info["num_key_value_heads"] != info["num_attention_heads"]:
        problems.append("grouped-query attention")
    if info["head_dim"] * info["num_attention_heads"] != info["hidden_size"]:
        problems.append("head_dim * heads != hidden_size")
    if info["rotary"] is not None or info["qk_norm"] or info["sliding_window"] is not None:
        problems.append("rotary embeddings, QK-norm or a sliding window")
    if problems:
        raise UnsupportedFeatureError(
            "the model cannot be expressed as gpt2: " + "; ".join(problems)
        )


def hf_config_for(model: nn.Module, model_type: str | None = None, max_length: int | None = None):
    """The transformers config of the architecture ``model`` (a Forgather causal LM) has.

    Args:
        model: A loaded Forgather causal LM.
        model_type: Target ``model_type``; default the one recorded at conversion
            (``config.hf_model_type``), else inferred from the modules.
        max_length: ``max_position_embeddings``; default the model config's.

    Returns:
        A transformers config (``LlamaConfig``, ``MistralConfig``, ...).

    Raises:
        UnsupportedFeatureError: When the modules have no equivalent in ``model_type``.
    """
    from transformers import AutoConfig

    info = _structure(model)
    config = model.config
    model_type = model_type or getattr(config, "hf_model_type", None) or infer_hf_model_type(info)
    if model_type not in HF_FAMILIES:
        raise UnsupportedFeatureError(
            f"model type {model_type!r} is not supported (supported: {', '.join(HF_FAMILIES)})"
        )
    max_positions = max_length or getattr(config, "max_position_embeddings", None)
    tokens = _token_ids(config)
    if HF_FAMILIES[model_type] == "gpt2":
        _check_gpt2(info)
        activation = {"tanh": "gelu_new", "none": "gelu"}.get(info["gelu_approximate"], "relu")
        return AutoConfig.for_model(
            "gpt2",
            vocab_size=info["vocab_size"],
            n_embd=info["hidden_size"],
            n_inner=info["intermediate_size"],
            n_head=info["num_attention_heads"],
            n_layer=info["num_hidden_layers"],
            n_positions=info["n_positions"],
            layer_norm_epsilon=info["eps"],
            activation_function=activation,
            embd_pdrop=getattr(config, "embd_pdrop", 0.0),
            resid_pdrop=getattr(config, "resid_pdrop", 0.0),
            attn_pdrop=info["attention_dropout"],
            tie_word_embeddings=info["tied"],
            **tokens,
        )
    _check_llama_family(info, model_type)
    if max_positions is None:
        raise UnsupportedFeatureError(
            "the model config has no max_position_embeddings; give --max-length"
        )
    rope = _rope_of(info["rotary"])
    fields = dict(
        vocab_size=info["vocab_size"],
        hidden_size=info["hidden_size"],
        intermediate_size=info["intermediate_size"],
        num_attention_heads=info["num_attention_heads"],
        num_key_value_heads=info["num_key_value_heads"],
        head_dim=info["head_dim"],
        num_hidden_layers=info["num_hidden_layers"],
        max_position_embeddings=max_positions,
        rms_norm_eps=info["eps"],
        rope_parameters=rope,
        attention_dropout=info["attention_dropout"],
        tie_word_embeddings=info["tied"],
        hidden_act="silu",
        **tokens,
    )
    if model_type == "llama":
        fields.update(attention_bias=info["attention_bias"], mlp_bias=info["mlp_bias"])
    elif model_type == "mistral":
        fields.update(sliding_window=info["sliding_window"])
    else:  # qwen2, qwen3
        window = info["sliding_window"]
        fields.update(
            use_sliding_window=window is not None, sliding_window=window, max_window_layers=0
        )
        if model_type == "qwen3":
            fields.update(attention_bias=info["attention_bias"])
    return AutoConfig.for_model(model_type, **fields)
