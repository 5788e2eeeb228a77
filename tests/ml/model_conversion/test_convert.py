"""Hugging Face <-> Forgather conversion of every supported architecture, logits compared.

Each tiny model goes Hugging Face -> Forgather -> Hugging Face through the
library; the conversion itself checks the logits (and fails otherwise), and
the test checks again on its own tokens and prints the largest difference.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

from forgather.ml.model import load_model
from forgather.ml.model_conversion import (
    HFConverter,
    LogitMismatchError,
    UnsupportedFeatureError,
    compare_logits,
    detect_model_type,
    detect_model_type_from_hf,
    forgather_hyperparameters,
    forgather_to_hf,
    get_converter,
    hf_to_forgather,
    validate_vllm_plans,
)

from .tiny_models import CONFIGS, SIZES, VOCAB, save_tiny

HF_TYPE = {name: CONFIGS[name]().model_type for name in CONFIGS}


def logits(model, ids):
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


@pytest.mark.parametrize("name", list(CONFIGS))
def test_round_trip_matches_logits(tmp_path, name):
    src = save_tiny(name, tmp_path / "hf", with_tokenizer=name.startswith("mistral"))
    forward = hf_to_forgather(src, tmp_path / "fg", generation_test=name.startswith("mistral"))
    back = forgather_to_hf(tmp_path / "fg", tmp_path / "back")
    assert (forward.model_type, back.model_type) == (HF_TYPE[name], HF_TYPE[name])

    reference = AutoModelForCausalLM.from_pretrained(src, attn_implementation="eager")
    ours = load_model(tmp_path / "fg", attn_implementation="sdpa")
    returned = AutoModelForCausalLM.from_pretrained(tmp_path / "back")
    # Longer than the dynamic-RoPE model's 16 positions and the sliding window of 4.
    ids = torch.randint(0, VOCAB, (2, 40), generator=torch.Generator().manual_seed(1))
    if name == "gpt2":
        ids = ids[:, :32]
    expected = logits(reference, ids)
    diff_fg = (logits(ours, ids) - expected).abs().max().item()
    diff_back = (logits(returned, ids) - expected).abs().max().item()
    print(f"{name}: max |logit diff| HF->Forgather {diff_fg:.2e}, ->HF {diff_back:.2e}")
    assert diff_fg < 1e-5 and diff_back < 1e-5

    config = json.loads((tmp_path / "fg" / "config.json").read_text())
    assert config["hf_model_type"] == HF_TYPE[name] and config["auto_map"]
    assert ours.config.tie_word_embeddings == reference.config.tie_word_embeddings
    assert (
        ours.lm_head.weight is ours.get_input_embeddings().weight
    ) == ours.config.tie_word_embeddings
    validate_vllm_plans(ours)
    assert detect_model_type(str(tmp_path / "fg")) == ("forgather", HF_TYPE[name])


def test_sliding_window_generation_with_and_without_cache(tmp_path):
    src = save_tiny("mistral_sliding_window", tmp_path / "hf", with_tokenizer=False)
    hf_to_forgather(src, tmp_path / "fg")
    ours = load_model(tmp_path / "fg", attn_implementation="sdpa")
    reference = AutoModelForCausalLM.from_pretrained(src)
    prompt = torch.tensor([[1, 5, 9, 13, 17, 21]])
    options = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
    cached = ours.generate(prompt, **options)
    assert torch.equal(cached, ours.generate(prompt, use_cache=False, **options))
    assert torch.equal(cached, reference.generate(prompt, **options))


def test_dtype_and_max_length(tmp_path):
    src = save_tiny("qwen3_qk_norm", tmp_path / "hf", with_tokenizer=False)
    result = hf_to_forgather(src, tmp_path / "fg", dtype="bfloat16", max_length=128)
    config = json.loads((tmp_path / "fg" / "config.json").read_text())
    assert result.dtype == "bfloat16" and config["dtype"] == "bfloat16"
    assert config["max_position_embeddings"] == 128
    assert load_model(tmp_path / "fg").lm_head.weight.dtype == torch.bfloat16


@pytest.mark.parametrize(
    "config, feature",
    [
        (
            Qwen2Config(**SIZES, use_sliding_window=True, sliding_window=4, max_window_layers=1),
            "per-layer sliding windows",
        ),
        (LlamaConfig(**SIZES, hidden_act="gelu"), "hidden_act 'gelu'"),
        (
            LlamaConfig(
                **SIZES,
                rope_parameters={
                    "rope_type": "longrope",
                    "rope_theta": 1e4,
                    "short_factor": [1.0] * 8,
                    "long_factor": [1.0] * 8,
                    "original_max_position_embeddings": 16,
                },
            ),  # fmt: skip
            "RoPE type 'longrope'",
        ),
    ],
    ids=["qwen2_mixed_sliding", "llama_gelu", "longrope"],
)
def test_unsupported_features_are_named(config, feature):
    with pytest.raises(UnsupportedFeatureError, match=feature):
        forgather_hyperparameters(config)


def test_a_wrong_conversion_is_an_error_and_leaves_nothing(tmp_path):
    src = save_tiny("llama_llama3_rope_gqa", tmp_path / "hf", with_tokenizer=False)
    hf_to_forgather(src, tmp_path / "fg")
    reference = AutoModelForCausalLM.from_pretrained(src)
    broken = load_model(tmp_path / "fg")
    with torch.no_grad():
        broken.model.layers[0].mlp.up_proj.weight.mul_(1.01)
    ids = torch.randint(0, VOCAB, (1, 8))
    with pytest.raises(LogitMismatchError, match="max abs diff"):
        compare_logits(reference, broken, ids)
    with pytest.raises(FileExistsError):
        hf_to_forgather(src, tmp_path / "fg")


def test_original_plugin_names(tmp_path):
    src = save_tiny("qwen2_qkv_bias_tied", tmp_path / "hf", with_tokenizer=False)
    assert detect_model_type_from_hf(str(src)) == "qwen2"
    converter = get_converter("qwen2")()
    assert isinstance(converter, HFConverter)
    converter.convert_to_forgather(str(src), str(tmp_path / "fg"), dtype="float32")
    # As Qwen3 the model has no QK-norm: a clear error, not a different model.
    with pytest.raises(UnsupportedFeatureError, match="QK-norm"):
        get_converter("qwen3")().convert_from_forgather(str(tmp_path / "fg"), str(tmp_path / "q3"))
    assert not (tmp_path / "q3").exists()
