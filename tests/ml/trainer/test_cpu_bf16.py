"""`bf16_gemm`: bf16 matmuls as float32 GEMMs give the numbers bf16 autocast gives.

Speed is measured in benchmarks/train_speed.py, never asserted here.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from forgather.ml.trainer import Trainer, TrainingArguments
from forgather.ml.trainer.cpu_bf16 import (
    Float32Gemms,
    cpu_has_native_bf16,
    resolve_bf16_gemm,
)
from forgather.ml.trainer.torch_settings import compiler_available
from tests.ml.trainer import tiny_lm

BF16_ULP = 2.0**-7  # relative spacing of bf16 numbers: results may differ by one rounding


def linear_step(float32_gemms: bool, bias: bool):
    """Forward and backward of one linear under CPU bf16 autocast: output and gradients."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 96, 64, generator=gen, requires_grad=True)
    weight = torch.randn(48, 64, generator=gen, requires_grad=True)
    b = torch.randn(48, generator=gen, requires_grad=True) if bias else None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        if float32_gemms:
            with Float32Gemms():
                out = F.linear(x, weight, b)
        else:
            out = F.linear(x, weight, b)
    (out.float() ** 2).sum().backward()
    grads = [x.grad, weight.grad] + ([b.grad] if bias else [])
    return out, grads


def assert_within_one_rounding(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    scale = want.float().abs().amax()
    assert (got.float() - want.float()).abs().amax() <= 2 * BF16_ULP * scale
    assert (got == want).float().mean() > 0.95  # most elements identical


@pytest.mark.parametrize("bias", [False, True])
def test_linear_under_autocast_gives_autocasts_numbers(bias):
    out, grads = linear_step(True, bias)
    want_out, want_grads = linear_step(False, bias)
    assert out.dtype == torch.bfloat16
    assert_within_one_rounding(out, want_out)
    for got, want in zip(grads, want_grads, strict=True):
        assert got.dtype == torch.float32  # each input's own dtype, as autocast returns it
        assert_within_one_rounding(got, want)


class GemmDtypes(TorchFunctionMode):
    """Entered outside `Float32Gemms`: records the dtypes the matmuls finally run in."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (F.linear, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.addmm):
            self.seen.append({a.dtype for a in args if isinstance(a, torch.Tensor)})
        return func(*args, **(kwargs or {}))


def test_the_gemms_run_in_float32():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(8, 16, generator=gen, requires_grad=True)
    weight = torch.randn(4, 16, generator=gen, requires_grad=True)
    a = torch.randn(8, 8, generator=gen).bfloat16()
    with GemmDtypes() as record, Float32Gemms():
        a @ a
        with torch.autocast("cpu", dtype=torch.bfloat16):
            F.linear(x, weight)
    assert record.seen and all(dtypes == {torch.float32} for dtypes in record.seen)
    with GemmDtypes() as record:  # without the mode, autocast runs the linear in bf16
        a @ a
    assert record.seen == [{torch.bfloat16}]


def test_unrecorded_bf16_matmuls_are_rounded_float32_gemms():
    gen = torch.Generator().manual_seed(1)
    a, b = (torch.randn(32, 32, generator=gen).bfloat16() for _ in range(2))
    c = torch.randn(32, 32, generator=gen).bfloat16()
    expected = (a.float() @ b.float()).bfloat16()
    out = torch.empty(32, 32, dtype=torch.bfloat16)
    with Float32Gemms():
        assert torch.equal(a @ b, expected)
        assert torch.equal(torch.matmul(a, b), expected)
        assert torch.equal(torch.mm(a, b, out=out), expected) and torch.equal(out, expected)
        assert torch.equal(torch.addmm(c, a, b), (c.float() + a.float() @ b.float()).bfloat16())
        # Not bf16, or recorded by autograd outside autocast: run as called.
        assert torch.equal(a.float() @ b.float(), a.float() @ b.float())
        recorded = a.clone().requires_grad_()
        assert (recorded @ b).grad_fn.name() == "MmBackward0"


def test_resolution_of_the_setting():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_bf16_gemm("auto", cpu) == ("native" if cpu_has_native_bf16() else "float32")
    assert resolve_bf16_gemm("auto", cuda) == "native"
    assert resolve_bf16_gemm("float32", cuda) == "float32"
    assert resolve_bf16_gemm("native", cpu) == "native"
    with pytest.raises(ValueError, match="bf16_gemm"):
        TrainingArguments("out", bf16_gemm="fp32")


def make(tmp_path, **overrides) -> Trainer:
    settings = dict(use_cpu=True, bf16=True, max_steps=3, per_device_train_batch_size=4,
                    report_to="none", save_strategy="no")  # fmt: skip
    args = TrainingArguments(str(tmp_path), **{**settings, **overrides})
    return Trainer(tiny_lm.make_model(), args, train_dataset=tiny_lm.token_rows(16),
                   data_collator=tiny_lm.collate)  # fmt: skip


# Importing Inductor (torch.compile) defines a TorchScript class: torch's own deprecation warning.
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_trainer_enters_the_mode_only_where_asked(tmp_path):
    forced = make(tmp_path / "f", bf16_gemm="float32", torch_compile=False)
    forced.train()
    assert forced._float32_gemms is True
    native = make(tmp_path / "n", bf16_gemm="native", torch_compile=False)
    assert native._float32_gemms is False
    assert make(tmp_path / "a", torch_compile=False)._float32_gemms is not cpu_has_native_bf16()
    assert make(tmp_path / "fp32", bf16=False, bf16_gemm="float32")._float32_gemms is False
    # Compiled models too: Dynamo traces through the mode (next test).
    compiled = make(tmp_path / "c", bf16_gemm="float32", torch_compile=True)
    compiled._ensure_setup()  # compiles the model in place (the compiler runs at the first call)
    assert compiled._float32_gemms is True
    wrapped = Trainer(torch.compile(tiny_lm.make_model()), forced.args,
                      train_dataset=tiny_lm.token_rows(16), data_collator=tiny_lm.collate)  # fmt: skip
    assert wrapped._float32_gemms is True


def mlp_step(model, x):
    """Loss and gradients of one bf16 autocast step of ``model`` under the mode."""
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16), Float32Gemms():
        loss = model(x).float().pow(2).mean()
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
# Dynamo, tracing `Bf16Linear.apply`, instantiates the autograd Function itself: torch's warning.
@pytest.mark.filterwarnings("ignore:<class 'torch.autograd.function.Function'>:DeprecationWarning")
@pytest.mark.skipif(
    not compiler_available("cpu"), reason="Inductor needs a C++ compiler to compile for the CPU"
)
def test_compiled_step_under_the_mode_equals_eager():
    """Inductor compiles through the mode, without a graph break, to eager's numbers."""
    import torch._dynamo

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 96), torch.nn.SiLU(), torch.nn.Linear(96, 32, bias=False)
    )
    x = torch.randn(64, 32)
    want_loss, want_grads = mlp_step(model, x)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    got_loss, got_grads = mlp_step(torch.compile(model, fullgraph=True), x)
    assert not torch._dynamo.utils.counters["graph_break"]
    assert got_loss.item() == pytest.approx(want_loss.item(), rel=4 * BF16_ULP)
    for got, want in zip(got_grads, want_grads, strict=True):
        torch.testing.assert_close(
            got, want, rtol=4 * BF16_ULP, atol=4 * BF16_ULP * want.abs().max()
        )


def test_training_with_float32_gemms_follows_bf16_autocast(tmp_path):
    """The same run, both ways: the loss curves agree to bf16 rounding."""
    curves = []
    for setting in ("float32", "native"):
        trainer = make(tmp_path / setting, bf16_gemm=setting, torch_compile=False,
                       logging_steps=1, learning_rate=1e-2, max_steps=4)  # fmt: skip
        trainer.train()
        curves.append([e["loss"] for e in trainer.state.log_history if "loss" in e])
    assert len(curves[0]) == 4
    for got, want in zip(*curves, strict=True):
        assert got == pytest.approx(want, rel=2e-2)


# Dynamo, tracing `Bf16Linear.apply`, instantiates the autograd Function itself: torch's warning.
@pytest.mark.filterwarnings("ignore:<class 'torch.autograd.function.Function'>:DeprecationWarning")
def test_compiled_mode_saves_bf16_activations():
    """AOT autograd (Inductor's partitioner) keeps the linears' inputs for the backward in
    bf16, as eager does, not their float32 copies (twice the memory)."""
    from functorch.compile import make_boxed_func, min_cut_rematerialization_partition
    from torch._functorch.aot_autograd import aot_module_simplified

    forward_outputs = []

    def forward_compiler(graph_module, inputs):
        (output,) = [node for node in graph_module.graph.nodes if node.op == "output"]
        forward_outputs.extend(
            arg.meta["val"] for arg in output.args[0] if isinstance(arg, torch.fx.Node)
        )
        return make_boxed_func(graph_module.forward)

    def backend(graph_module, inputs):
        return aot_module_simplified(
            graph_module,
            inputs,
            fw_compiler=forward_compiler,
            bw_compiler=lambda gm, _: make_boxed_func(gm.forward),
            partition_fn=min_cut_rematerialization_partition,
        )

    rows = 64  # no feature size is 64: a saved tensor with 64 in its shape holds activations
    model = torch.nn.Sequential(
        torch.nn.Linear(32, 96), torch.nn.SiLU(), torch.nn.Linear(96, 32, bias=False)
    )
    with torch.autocast("cpu", dtype=torch.bfloat16), Float32Gemms():
        out = torch.compile(model, backend=backend, fullgraph=True)(torch.randn(rows, 32))
    out.float().sum().backward()
    activations = [t for t in forward_outputs if rows in t.shape]
    assert len(activations) >= 3  # the output and both linears' inputs
    assert all(t.dtype == torch.bfloat16 for t in activations), [
        (tuple(t.shape), t.dtype) for t in activations
    ]


class SelfCheckpointingMLP(torch.nn.Module):
    """A model that checkpoints its block itself, ignoring the function it is given."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(tiny_lm.VOCAB, 32)
        self.block = torch.nn.Sequential(
            torch.nn.Linear(32, 64), torch.nn.SiLU(), torch.nn.Linear(64, 32)
        )
        self.head = torch.nn.Linear(32, tiny_lm.VOCAB)
        self.checkpointing = False

    def gradient_checkpointing_enable(self, gradient_checkpointing_kwargs=None):
        self.checkpointing = True

    def forward(self, input_ids, labels=None):
        from torch.utils.checkpoint import checkpoint

        x = self.embed(input_ids)
        x = checkpoint(self.block, x, use_reentrant=False) if self.checkpointing else self.block(x)
        logits = self.head(x)
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten())
        return {"loss": loss, "logits": logits}


def test_a_model_that_checkpoints_itself_gets_a_way_out(tmp_path):
    """Its recomputation runs outside the mode and torch stops the step: the error says why
    and what to do, instead of torch's list of mismatched tensors alone."""
    from torch.utils.checkpoint import CheckpointError

    args = TrainingArguments(str(tmp_path), use_cpu=True, bf16=True, bf16_gemm="float32",
                             gradient_checkpointing=True, max_steps=1, report_to="none",
                             save_strategy="no", per_device_train_batch_size=4)  # fmt: skip
    trainer = Trainer(SelfCheckpointingMLP(), args, train_dataset=tiny_lm.token_rows(8),
                      data_collator=tiny_lm.collate)  # fmt: skip
    with pytest.raises(CheckpointError, match="bf16_gemm: native"):
        trainer.train()
    # The mode is what makes the difference: native bf16 GEMMs train it.
    args.bf16_gemm = "native"
    Trainer(SelfCheckpointingMLP(), args, train_dataset=tiny_lm.token_rows(8),
            data_collator=tiny_lm.collate).train()  # fmt: skip
