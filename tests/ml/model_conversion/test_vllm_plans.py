"""validate_vllm_plans on every shipped model template, and on broken plans."""

from __future__ import annotations

import io

import pytest
from torch import nn

from forgather.ml.model_conversion import (
    model_structure,
    print_model_structure,
    validate_vllm_plans,
)

from .conftest import build_template

TEMPLATES = ["llama.yaml", "llama_4m.yaml", "gpt2.yaml", "gpt2_4m.yaml", "deepnet.yaml"]


@pytest.fixture(scope="module")
def llama_meta(tmp_path_factory):
    return build_template("llama_4m.yaml", tmp_path_factory.mktemp("m") / "llama", device="meta")


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_shipped_template_passes(tmp_path, template):
    model = build_template(template, tmp_path / template.removesuffix(".yaml"), device="meta")
    assert validate_vllm_plans(model) == []
    assert validate_vllm_plans(model.model) == []  # the base model (what AutoModel builds) too


def test_a_broken_plan_is_reported_in_full(llama_meta):
    tp_plan = {
        "layers.*.self_attn.q_proj": "colwise",  # o_proj missing: shards never combined
        "layers.*.mlp": "colwise",  # a module, not a Linear
        "layers.*.attn.qkv": "colwise",  # matches nothing
        "layers.*.mlp.down_proj": "sideways",  # unknown style
    }
    pp_plan = {"model.layers": (["hidden_states"], ["hidden_states"])}
    with pytest.raises(ValueError) as err:
        validate_vllm_plans(llama_meta, tp_plan=tp_plan, pp_plan=pp_plan)
    message = str(err.value)
    assert message.startswith("ForgatherLlama4mForCausalLM is not ready for vLLM:\n  - ")
    for expected in [
        "tp_plan['layers.*.mlp'] matches layers.0.mlp (and 3 more), a GatedMLP; vLLM shards only nn.Linear",
        "tp_plan['layers.*.attn.qkv'] matches no module",
        "tp_plan['layers.*.mlp.down_proj']: unknown style 'sideways'",
        "layers.*.self_attn: q_proj split column-wise, but no sibling is row-wise",
        "pp_plan['model.layers'] is not a direct child of ForgatherLlama4mModel "
        "(children: input_encoder, layers, norm)",
        "pp_plan must name exactly one nn.ModuleList of layers, found 0",
        "input_encoder has parameters but is not in pp_plan",
    ]:
        assert expected in message, expected


def test_non_strict_returns_the_problems(llama_meta):
    problems = validate_vllm_plans(llama_meta, tp_plan={}, strict=False)
    assert problems == ["no tensor-parallel plan (config.base_model_tp_plan is empty)"]


def test_layers_need_their_index(llama_meta):
    layer = llama_meta.model.layers[1].self_attn
    layer.layer_idx = 0
    try:
        problems = validate_vllm_plans(llama_meta, strict=False)
    finally:
        layer.layer_idx = 1
    assert problems == ["layers.1 should hold one attention module with layer_idx=1, found [0]"]


def test_print_model_structure_folds_repeated_layers(llama_meta):
    out = io.StringIO()
    text = print_model_structure(llama_meta, max_depth=3, file=out)
    assert out.getvalue() == text + "\n"
    lines = text.splitlines()
    assert lines[0] == "ForgatherLlama4mForCausalLM  4.46M parameters"
    assert "│  │  └─ 0-3: 4 x PreLNLayer  3.41M" in lines
    assert not any("self_attn" in line for line in lines)  # deeper than max_depth
    assert "self_attn: CausalMultiheadAttention" in model_structure(llama_meta, max_depth=4)


def test_structure_counts_tied_weights_once():
    embedding = nn.Embedding(10, 4)
    head = nn.Linear(4, 10, bias=False)
    head.weight = embedding.weight
    model = nn.ModuleDict({"embed": embedding, "head": head})
    assert model_structure(model).splitlines()[0] == "ModuleDict  40 parameters"
