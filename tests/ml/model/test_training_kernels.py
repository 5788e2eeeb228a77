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

from forgather.ml.trainer.torch_settings import compiler_available

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


# --- saved_activations.py: the same numbers as the plain operators, fewer saved tensors


@pytest.mark.parametrize("autocast", [False, True])
def test_swiglu_function_equals_the_plain_gated_mlp(autocast):
    mlp = component("feedforward").GatedMLP(32, 48).train()
    x = torch.randn(3, 17, 32, requires_grad=True)
    grad = torch.randn(3, 17, 32)
    params = [x, mlp.gate_proj.weight, mlp.up_proj.weight, mlp.down_proj.weight]
    assert mlp._saves_less_with_function(x)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        got = mlp(x)
        want = mlp.down_proj(F.silu(mlp.gate_proj(x)) * mlp.up_proj(x))
    got_grads = torch.autograd.grad(got, params, grad)
    want_grads = torch.autograd.grad(want, params, grad)
    assert got.dtype == want.dtype
    torch.testing.assert_close(got, want)
    # bf16 rounds the element-wise products in another order than autograd does.
    tolerance = dict(atol=2e-2, rtol=2e-2) if autocast else {}
    for got_grad, want_grad in zip(got_grads, want_grads, strict=True):
        assert got_grad.dtype == torch.float32
        torch.testing.assert_close(got_grad, want_grad, **tolerance)


def test_swiglu_function_is_not_used_on_wrapped_projections():
    """LoRA and other wrappers replace nn.Linear: their own forward must run."""
    feedforward = component("feedforward")

    class Wrapped(torch.nn.Linear):
        pass

    mlp = feedforward.GatedMLP(8, 16).train()
    x = torch.randn(2, 3, 8, requires_grad=True)
    assert mlp._saves_less_with_function(x)
    mlp.up_proj = Wrapped(8, 16, bias=False)
    assert not mlp._saves_less_with_function(x)
    with torch.no_grad():
        assert not feedforward.GatedMLP(8, 16)._saves_less_with_function(x)


@pytest.mark.parametrize(
    ("dtype", "compute_dtype"),
    [
        (torch.float32, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.bfloat16, torch.bfloat16),
    ],
)
@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("length", [24, 300])  # one kernel call; two chunks of query rows
def test_cpu_attention_function_equals_sdpa(dtype, compute_dtype, packed, length):
    saved_activations = component("saved_activations")
    gen = torch.Generator().manual_seed(3)
    q, k, v = (
        torch.randn(2, 4, length, 16, generator=gen, dtype=dtype, requires_grad=True)
        for _ in range(3)
    )
    mask = None
    if packed:
        first = length * 5 // 8
        position_ids = torch.tensor([[*range(first), *range(length - first)], [*range(length)]])
        mask = component("attention_masks").dense_causal_mask(
            length, 0, None, position_ids, q.device
        )
    chunks = saved_activations._row_chunks(mask, length)
    assert len(chunks) == (1 if length <= saved_activations.QUERY_CHUNK_ROWS else 2)
    grad = torch.randn(2, 4, length, 16, generator=gen, dtype=dtype)
    got = saved_activations.CPUAttentionFunction.apply(q, k, v, mask, 0.25, compute_dtype)
    want = F.scaled_dot_product_attention(
        *(t.to(compute_dtype) for t in (q, k, v)),
        attn_mask=mask,
        is_causal=mask is None,
        scale=0.25,
    ).to(dtype)
    if len(chunks) == 1:
        assert torch.equal(got, want)
    else:  # the same sums, perhaps blocked differently by the kernel's GEMMs
        close = dict(atol=1e-6, rtol=1e-5) if dtype == torch.float32 else dict(atol=1e-2, rtol=1e-2)
        torch.testing.assert_close(got, want, **close)
    got_grads = torch.autograd.grad(got, (q, k, v), grad)
    want_grads = torch.autograd.grad(want, (q, k, v), grad)
    # Upcast: the output is saved in bf16, so the backward's row sums round once more.
    # Chunked: the key and value gradients are sums over the chunks (in bf16, of rounded parts).
    if dtype != compute_dtype or (dtype == torch.bfloat16 and len(chunks) > 1):
        tolerance = dict(atol=2e-2, rtol=2e-2)
    else:
        tolerance = dict(atol=1e-6, rtol=1e-5) if len(chunks) > 1 else dict(atol=0, rtol=0)
    for got_grad, want_grad in zip(got_grads, want_grads, strict=True):
        assert got_grad.dtype == dtype
        torch.testing.assert_close(got_grad, want_grad, **tolerance)


def test_cpu_attention_chunks_keep_the_keys_a_non_causal_mask_shows():
    """A caller's own 4-D boolean mask may let early rows see late keys: every chunk then
    takes the keys up to the last one its rows may see, and the result is SDPA's."""
    saved_activations = component("saved_activations")
    gen = torch.Generator().manual_seed(5)
    length = 320
    q, k, v = (torch.randn(1, 2, length, 8, generator=gen, requires_grad=True) for _ in range(3))
    mask = torch.ones(length, length, dtype=torch.bool).tril()
    mask[3, length - 2] = True  # row 3 (first chunk) sees the second-to-last key
    mask = mask[None, None]
    assert saved_activations._row_chunks(mask, length) == [(0, 256, length - 1), (256, 320, 320)]
    got = saved_activations.CPUAttentionFunction.apply(q, k, v, mask, None, torch.float32)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)
    grad = torch.randn(1, 2, length, 8, generator=gen)
    for got_grad, want_grad in zip(
        torch.autograd.grad(got, (q, k, v), grad),
        torch.autograd.grad(want, (q, k, v), grad),
        strict=True,
    ):
        torch.testing.assert_close(got_grad, want_grad, atol=1e-6, rtol=1e-5)


def saved_tensor_shapes(model, batch):
    """(shape, dtype) of each distinct storage a training forward saves for its backward."""
    saved = {}

    def pack(tensor):
        saved[tensor.untyped_storage().data_ptr()] = (tuple(tensor.shape), tensor.dtype)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(**batch).loss.backward()
    return list(saved.values())


def test_a_training_forward_saves_one_mask_and_two_mlp_tensors_per_layer(model):
    batch = packed_batch()
    batch["attention_mask"] = torch.ones_like(batch["input_ids"])
    model.train()
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            shapes = saved_tensor_shapes(model, batch)
    finally:
        model.eval()
        model.zero_grad(set_to_none=True)
    layers = TINY["num_hidden_layers"]
    masks = [s for s in shapes if s[0] == (2, 1, 12, 12)]
    assert masks == [((2, 1, 12, 12), torch.bool)]  # shared by every layer, never a float copy
    intermediate = [s for s in shapes if s[0] == (2, 12, TINY["intermediate_size"])]
    assert len(intermediate) == 2 * layers  # gate and up; not silu(gate) nor the product
    attention = [
        s for s in shapes if s[0] == (2, TINY["num_attention_heads"], 12, TINY["head_dim"])
    ]
    assert attention and all(dtype == torch.bfloat16 for _, dtype in attention)


def test_compiled_training_takes_the_loss_from_logits(model):
    """Under torch.compile the chunked loss is not used (traced by torch 2.11 on CUDA its
    gradients were zeros); the logits path gives the same loss. Dynamo's "eager" backend
    traces the model as compiling does, without Inductor's cost."""
    import torch._dynamo

    model.train()
    torch._dynamo.reset()
    try:
        compiled = torch.compile(model, backend="eager", fullgraph=True)(**packed_batch())
        eager = model(**packed_batch())
    finally:
        model.eval()
        torch._dynamo.reset()
    assert eager.logits is None
    assert compiled.logits is not None
    torch.testing.assert_close(compiled.loss, eager.loss)


def test_bf16_gemms_on_a_cpu_without_native_bf16_run_in_float32():
    """Same numbers as the bf16 GEMM (exact products, float32 sums), rounded once to bf16."""
    sa = component("saved_activations")
    gen = torch.Generator().manual_seed(3)
    a, b, c, d = (torch.randn(24, 24, generator=gen).bfloat16() for _ in range(4))
    if sa.CPU_NATIVE_BF16:
        assert torch.equal(sa.matmul(a, b), a @ b)
        return
    assert torch.equal(sa.matmul(a, b), (a.float() @ b.float()).bfloat16())
    both = (a.float() @ b.float() + c.float() @ d.float()).bfloat16()
    torch.testing.assert_close(sa.matmul_sum(a, b, c, d), both, atol=0, rtol=2**-7)
    assert sa.matmul(a.float(), b.float()).dtype == torch.float32  # other dtypes as called


@pytest.mark.parametrize(
    "bf16_gemm, compiled",
    [
        ("float32", False),
        ("native", False),
        pytest.param("float32", True, marks=pytest.mark.skipif(
            not compiler_available("cpu"), reason="Inductor needs a C++ compiler for the CPU"
        )),
    ],
)  # fmt: skip
# Compiled: Dynamo notes the checkpoint's context_fn, and instantiates Bf16Linear itself.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:<class 'torch.autograd.function.Function'>:DeprecationWarning")
def test_activation_checkpointing_under_bf16_autocast_trains_as_without(
    llama, tmp_path, bf16_gemm, compiled
):
    """The trainer's float32-GEMM mode covers the recomputation in the backward too: without
    it the recomputed linears saved other tensors than the forward's and the step failed.
    Compiled, the checkpoint's context_fn gives the dispatch modes Dynamo requires (compared
    with the eager run without checkpointing: one compile, not two)."""
    from forgather.ml.trainer import Trainer, TrainingArguments

    gen = torch.Generator().manual_seed(5)
    rows = [{"input_ids": r, "labels": r} for r in torch.randint(0, 96, (8, 16), generator=gen)]

    def losses(checkpointing: bool) -> list[float]:
        torch.manual_seed(0)
        model = type(llama)(llama.config)
        model.load_state_dict(llama.state_dict())
        args = TrainingArguments(
            str(tmp_path / f"{checkpointing}"), use_cpu=True, bf16=True, bf16_gemm=bf16_gemm,
            gradient_checkpointing=checkpointing, torch_compile=compiled and checkpointing, max_steps=3,
            per_device_train_batch_size=4, logging_steps=1, learning_rate=1e-2,
            report_to="none", save_strategy="no",
        )  # fmt: skip
        collate = lambda batch: {k: torch.stack([b[k] for b in batch]) for k in batch[0]}  # noqa: E731
        trainer = Trainer(model, args, train_dataset=rows, data_collator=collate)
        trainer.train()
        return [e["loss"] for e in trainer.state.log_history if "loss" in e]

    plain, checkpointed = losses(False), losses(True)
    assert len(checkpointed) == 3
    # Compiled against eager: Inductor's fused bf16 arithmetic rounds differently.
    assert checkpointed == pytest.approx(plain, rel=5e-3 if compiled else 1e-3)
