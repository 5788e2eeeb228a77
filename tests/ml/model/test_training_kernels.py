"""The training fast paths of the generated models give the numbers of the plain ones.

The chunked linear + cross-entropy against ``F.cross_entropy`` on full logits
(values and gradients, ignored labels, packed documents, accumulation), the
model's loss without logits against its loss from logits, the rotary tables
shared by every layer, and a training forward that compiles without graph breaks.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from .conftest import TINY, build_template, component

IGNORE = -100


def reference_loss(hidden, weight, labels, num_items_in_batch=None):
    logits = (hidden @ weight.T).float()
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
    targets = labels[:, 1:].reshape(-1)
    if num_items_in_batch is None:
        return F.cross_entropy(shifted, targets, ignore_index=IGNORE)
    return F.cross_entropy(shifted, targets, ignore_index=IGNORE, reduction="sum") / (
        num_items_in_batch
    )


def packed_labels(batch, seq_len, vocab, seed=0):
    """Labels of packed rows: -100 at each document start and on right padding."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, vocab, (batch, seq_len), generator=gen)
    labels[:, 0] = IGNORE
    labels[0, seq_len // 2] = IGNORE  # a second document in row 0
    labels[1, seq_len - 2 :] = IGNORE  # padding
    return labels


@pytest.mark.parametrize("chunk_rows", [1, 5, 16, None])
@pytest.mark.parametrize("num_items", [None, 50])
def test_chunked_loss_equals_cross_entropy_on_full_logits(chunk_rows, num_items):
    loss_mod = component("causal_loss")
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 13, 8, generator=gen, requires_grad=True)
    weight = torch.randn(40, 8, generator=gen, requires_grad=True)
    labels = packed_labels(3, 13, 40)
    expected = reference_loss(hidden, weight, labels, num_items)
    expected_grads = torch.autograd.grad(expected, (hidden, weight))
    loss = loss_mod.linear_cross_entropy(
        hidden, weight, labels, num_items_in_batch=num_items, chunk_rows=chunk_rows
    )
    grads = torch.autograd.grad(loss * 3.0, (hidden, weight))  # backward scales by its input
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grads[0], 3.0 * expected_grads[0])
    torch.testing.assert_close(grads[1], 3.0 * expected_grads[1])


def test_chunked_loss_without_grad_and_with_everything_ignored():
    loss_mod = component("causal_loss")
    hidden, weight = torch.randn(2, 6, 4), torch.randn(10, 4)
    labels = packed_labels(2, 6, 10)
    with torch.no_grad():
        torch.testing.assert_close(
            loss_mod.linear_cross_entropy(hidden, weight, labels, chunk_rows=4),
            reference_loss(hidden, weight, labels),
        )
    nothing = torch.full((2, 6), IGNORE)
    assert torch.isnan(loss_mod.linear_cross_entropy(hidden, weight, nothing))  # as F.cross_entropy


def test_chunked_loss_under_bf16_autocast_is_close_to_the_plain_head():
    loss_mod = component("causal_loss")
    gen = torch.Generator().manual_seed(1)
    hidden = torch.randn(2, 33, 16, generator=gen, requires_grad=True)
    weight = torch.randn(64, 16, generator=gen, requires_grad=True)
    labels = packed_labels(2, 33, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = loss_mod.causal_lm_loss(F.linear(hidden, weight), labels)
        loss = loss_mod.linear_cross_entropy(hidden, weight, labels, chunk_rows=8)
    expected_grads = torch.autograd.grad(expected, (hidden, weight))
    grads = torch.autograd.grad(loss, (hidden, weight))
    assert loss.dtype == torch.float32 and grads[0].dtype == torch.float32
    torch.testing.assert_close(loss, expected, atol=2e-2, rtol=1e-2)
    for got, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(got, want, atol=2e-3, rtol=2e-2)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return build_template("llama_4m.yaml", tmp_path_factory.mktemp("kernels") / "m", **TINY)


def packed_batch():
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(3, TINY["vocab_size"], (2, 12), generator=gen)
    position_ids = torch.tensor([list(range(7)) + list(range(5)), list(range(12))])
    labels = ids.masked_fill(position_ids == 0, IGNORE)
    return dict(input_ids=ids, position_ids=position_ids, labels=labels)


def loss_and_grads(model, **kwargs):
    model.zero_grad(set_to_none=True)
    out = model(**packed_batch(), **kwargs)
    out.loss.backward()
    return out, [p.grad.clone() for p in model.parameters()]


def test_training_loss_skips_logits_and_equals_the_loss_from_logits(model):
    model.train()
    try:
        fused, fused_grads = loss_and_grads(model)
        plain, plain_grads = loss_and_grads(model, skip_logits=False)
    finally:
        model.eval()
    assert fused.logits is None and plain.logits.shape == (2, 12, TINY["vocab_size"])
    torch.testing.assert_close(fused.loss, plain.loss)
    for got, want in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, want)
    with torch.no_grad():
        evaluated = model(**packed_batch())
    assert evaluated.logits is not None
    torch.testing.assert_close(evaluated.loss, plain.loss)


def test_rotary_tables_computed_once_equal_per_layer_tables(model):
    assert model.model.__dict__["_shared_rotary"] is model.model.layers[0].self_attn.rotary
    batch = packed_batch()
    del batch["labels"]
    with torch.no_grad():
        shared = model(**batch).logits
        model.model.__dict__["_shared_rotary"] = None  # each layer computes its own
        try:
            per_layer = model(**batch).logits
        finally:
            model.model.__dict__["_shared_rotary"] = model.model.layers[0].self_attn.rotary
    assert torch.equal(shared, per_layer)


def test_sdpa_upcasts_only_bf16_training_on_cpus_without_bf16():
    attention = component("causal_attention")
    query = torch.zeros(1, 1, 2, 4, dtype=torch.bfloat16, requires_grad=True)
    expected = not attention.CPU_NATIVE_BF16
    assert attention.upcast_for_backward("sdpa", query) is expected
    assert not attention.upcast_for_backward("eager", query)
    assert not attention.upcast_for_backward("sdpa", query.detach().float())
    with torch.no_grad():
        assert not attention.upcast_for_backward("sdpa", query)


def test_a_model_held_in_bf16_trains_without_autocast(model):
    """Pure bf16 (the original Forgather's `default_dtype: bfloat16`): the attention
    upcast hands o_proj its bf16 input back, and every gradient is bf16."""
    import copy

    held = copy.deepcopy(model).to(torch.bfloat16).train()
    out = held(**packed_batch())
    out.loss.backward()
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    assert all(p.grad.dtype == torch.bfloat16 for p in held.parameters())


# Dynamo itself instantiates torch.autograd.Function when tracing a custom one (torch 2.13).
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
def test_compiled_training_forward_has_no_graph_breaks(model):
    import torch._dynamo

    batch = packed_batch()
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    model.train()
    torch._dynamo.reset()
    try:
        explanation = torch._dynamo.explain(model)(**batch)
    finally:
        model.eval()
        torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
