"""Parity: transformers' Llama and GPT-2 weights in Forgather's templates give the same logits."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from forgather.ml.model_conversion import convert_gpt2_state_dict, convert_llama_state_dict

from .conftest import build_template

SIZES = dict(
    vocab_size=96,
    hidden_size=64,
    intermediate_size=128,
    num_attention_heads=4,
    head_dim=16,
    num_hidden_layers=2,
    max_position_embeddings=64,
)
LLAMA3 = {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 16,
}


def compare(reference, ours, impl):
    reference.set_attn_implementation(impl)
    ours.set_attn_implementation(impl)
    ids = torch.randint(0, SIZES["vocab_size"], (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, actual = reference(input_ids=ids).logits, ours(input_ids=ids).logits
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("variant", ["mha", "gqa_llama3_rope"])
def test_llama_parity(tmp_path, impl, variant):
    kv_heads = 4 if variant == "mha" else 2
    rope = {"rope_type": "default", "rope_theta": 10000.0}
    if variant != "mha":
        rope = {"rope_type": "llama3", "rope_theta": 500000.0, **LLAMA3}
    torch.manual_seed(0)
    reference = LlamaForCausalLM(
        LlamaConfig(
            **SIZES,
            num_key_value_heads=kv_heads,
            rms_norm_eps=1e-5,
            rope_parameters=rope,
            tie_word_embeddings=False,
        )
    ).eval()
    ours = build_template(
        "llama_4m.yaml",
        tmp_path / "llama",
        **SIZES,
        num_key_value_heads=kv_heads,
        rope_theta=rope["rope_theta"],
        rope_llama3_scaling=None if variant == "mha" else LLAMA3,
    )
    ours.load_state_dict(convert_llama_state_dict(reference.state_dict()), strict=True)
    compare(reference, ours, impl)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_gpt2_parity(tmp_path, impl):
    torch.manual_seed(0)
    reference = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=SIZES["vocab_size"],
            n_positions=SIZES["max_position_embeddings"],
            n_embd=SIZES["hidden_size"],
            n_layer=SIZES["num_hidden_layers"],
            n_head=SIZES["num_attention_heads"],
            n_inner=SIZES["intermediate_size"],
            activation_function="gelu_new",
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    ).eval()
    ours = build_template("gpt2_4m.yaml", tmp_path / "gpt2", **SIZES, num_key_value_heads=4)
    ours.load_state_dict(convert_gpt2_state_dict(reference.state_dict()), strict=True)
    assert ours.lm_head.weight is ours.get_input_embeddings().weight
    compare(reference, ours, impl)
