"""The ``modelsrc/transformer`` components on their own, against references."""

from __future__ import annotations

import doctest

import pytest
import torch
from transformers import LlamaConfig
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from .conftest import component


@pytest.mark.parametrize("module", ["attention_masks", "alibi"])
def test_doctests(module):
    result = doctest.testmod(component(module))
    assert result.attempted > 0 and result.failed == 0


def test_packed_mask_never_crosses_documents():
    masks = component("attention_masks")
    position_ids = torch.tensor([[0, 1, 2, 0, 1, 0]])
    mask = masks.dense_causal_mask(6, 0, None, position_ids, torch.device("cpu"))[0, 0]
    doc = masks.document_ids(position_ids)[0]
    for q in range(6):
        for k in range(6):
            assert bool(mask[q, k]) == (k <= q and bool(doc[q] == doc[k])), (q, k)


def test_padding_is_masked_and_no_row_is_empty():
    masks = component("attention_masks")
    attention_mask = torch.tensor([[0, 0, 1, 1, 1]])  # left padding
    mask = masks.dense_causal_mask(5, 0, attention_mask, None, torch.device("cpu"))[0, 0]
    assert not mask[2:, :2].any()  # real tokens never see padding
    assert mask.any(dim=-1).all()  # every query attends somewhere (no NaN)


def test_sdpa_mask_is_skipped_only_when_plain_causal():
    masks = component("attention_masks")
    args = dict(batch_size=1, dtype=torch.float32, device=torch.device("cpu"))
    plain = masks.causal_attention_mask(
        "sdpa",
        query_length=4,
        past_length=0,
        attention_mask=None,
        position_ids=torch.arange(4)[None],
        **args,
    )
    packed = masks.causal_attention_mask(
        "sdpa",
        query_length=4,
        past_length=0,
        attention_mask=None,
        position_ids=torch.tensor([[0, 1, 0, 1]]),
        **args,
    )
    chunk = masks.causal_attention_mask(
        "sdpa",
        query_length=2,
        past_length=3,
        attention_mask=None,
        position_ids=torch.tensor([[3, 4]]),
        **args,
    )
    vllm = masks.causal_attention_mask(
        "vllm",
        query_length=4,
        past_length=0,
        attention_mask=None,
        position_ids=torch.tensor([[0, 1, 0, 1]]),
        **args,
    )
    assert plain is None and vllm is None
    assert packed is not None and chunk is not None
    assert chunk.shape == (1, 1, 2, 5) and chunk[0, 0, 0].tolist() == [True] * 4 + [False]


def test_default_position_ids_skip_left_padding_and_continue_the_cache():
    masks = component("attention_masks")
    cpu = torch.device("cpu")
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    assert masks.default_position_ids(mask, 0, 4, cpu).tolist() == [[0, 0, 1, 2], [0, 1, 2, 3]]
    assert masks.default_position_ids(mask, 3, 1, cpu).tolist() == [[2], [3]]
    assert masks.default_position_ids(None, 5, 2, cpu).tolist() == [[5, 6]]


def test_llama3_rope_scaling_matches_transformers():
    rotary = component("rotary_embeddings")
    scaling = {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    config = LlamaConfig(
        hidden_size=256,
        num_attention_heads=4,
        max_position_embeddings=512,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, **scaling},
    )
    expected, _ = ROPE_INIT_FUNCTIONS["llama3"](config, "cpu")
    ours = rotary.RotaryEmbedding(64, rope_theta=500000.0, llama3_scaling=scaling).inv_freq("cpu")
    torch.testing.assert_close(ours, expected)


def test_rotary_preserves_norms_and_depends_on_relative_position():
    rotary = component("rotary_embeddings").RotaryEmbedding(16)
    q, k = torch.randn(1, 2, 1, 16), torch.randn(1, 2, 1, 16)

    def score(pq, pk):
        rq, _ = rotary(q, q, torch.tensor([[pq]]))
        _, rk = rotary(k, k, torch.tensor([[pk]]))
        return (rq * rk).sum(-1)

    torch.testing.assert_close(score(3, 1), score(10, 8))
    rq, _ = rotary(q, k, torch.tensor([[7]]))
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))


def test_rmsnorm_matches_llama():
    norms = component("norms")
    x = torch.randn(2, 5, 32, dtype=torch.bfloat16)
    ours, theirs = norms.RMSNorm(32, eps=1e-5), LlamaRMSNorm(32, eps=1e-5)
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    torch.testing.assert_close(ours.to(torch.bfloat16)(x), theirs.to(torch.bfloat16)(x))


def test_sinusoidal_positions():
    pe = component("absolute_positions").SinusoidalPositionalEncoding(8)
    table = pe(torch.arange(3)[None])[0]  # (3, 8)
    torch.testing.assert_close(table[0], torch.tensor([0.0, 1.0] * 4))
    torch.testing.assert_close(table[2, 0], torch.sin(torch.tensor(2.0)))
    with pytest.raises(ValueError, match="even"):
        component("absolute_positions").SinusoidalPositionalEncoding(7)


def test_eager_attention_matches_torch_sdpa_with_gqa():
    attention = component("causal_attention")
    module = torch.nn.Module()
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    ours, _ = attention.eager_attention(module, q, k, v, None, scaling=8**-0.5)
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=True, enable_gqa=True
    )
    torch.testing.assert_close(ours, expected.transpose(1, 2))


def test_alibi_bias_penalises_distance_per_head():
    alibi = component("alibi").ALiBi(4)
    q, k = torch.zeros(1, 4, 3, 8), torch.zeros(1, 4, 3, 8)
    bias = alibi(None, q, k)  # (1, H, T, S)
    slopes = component("alibi").alibi_slopes(4)
    assert bias.shape == (1, 4, 3, 3)
    torch.testing.assert_close(bias[0, :, 2, 0], -2 * slopes)
    assert (bias[0, :, 0, 1:] == torch.finfo(torch.float32).min).all()  # the future is masked


def test_init_by_regex_first_match_wins_and_unmatched_is_an_error():
    init = component("init_weights")
    rules = {r"norm\.weight$": torch.nn.init.ones_, r"weight$": torch.nn.init.zeros_}
    a, b = torch.empty(3), torch.empty(3)
    init.init_by_regex("layers.0.input_layernorm.weight", a, rules)
    init.init_by_regex("layers.0.q_proj.weight", b, rules)
    assert a.tolist() == [1.0] * 3 and b.tolist() == [0.0] * 3
    with pytest.raises(ValueError, match="no weight-init rule matches parameter 'x.bias'"):
        init.init_by_regex("x.bias", b, rules)


def test_causal_loss_shifts_labels_and_ignores_minus_100():
    loss_fn = component("causal_loss").causal_lm_loss
    logits = torch.randn(2, 4, 10)
    labels = torch.tensor([[1, 2, 3, -100], [4, 5, -100, -100]])
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 10), labels[:, 1:].reshape(-1), ignore_index=-100
    )
    torch.testing.assert_close(loss_fn(logits, labels), expected)
    torch.testing.assert_close(loss_fn(logits, labels, num_items_in_batch=3), expected)


def test_attention_rejects_alibi_with_kernels_that_cannot_take_a_bias():
    attention = component("causal_attention").CausalMultiheadAttention(
        16, 2, alibi=component("alibi").ALiBi(2)
    )
    x = torch.randn(1, 3, 16)
    with pytest.raises(ValueError, match="ALiBi needs attention implementation"):
        attention(x, position_ids=torch.arange(3)[None], attn_implementation="flash_attention_2")
