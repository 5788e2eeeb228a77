"""The CUDA paths on a real GPU, with a generated model from the shipped templates.

The CPU suite cannot reach them: SDPA's CUDA kernels under bf16 autocast, the
chunked loss and rotary tables on the device, `torch.compile` with Inductor's
GPU backend, the Trainer picking CUDA by itself, and the server's scheduler
decoding on the device. Every test here is marked ``gpu``; ``tests/conftest.py``
skips them where CUDA is not available.
"""

from __future__ import annotations

import copy

import pytest
import torch

from forgather.ml.trainer import Trainer, TrainingArguments
from forgather.serve.sampling import SamplingParams
from forgather.serve.scheduler import BatchScheduler
from tests.ml.model.conftest import TINY, build_template
from tests.serve.tiny_model import train_tokenizer

pytestmark = pytest.mark.gpu

IGNORE = -100
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The llama_4m template at test size, in fp32 on the CPU (each test moves a copy)."""
    return build_template("llama_4m.yaml", tmp_path_factory.mktemp("gpu") / "m", **TINY)


def packed_batch(device, rows=4, seq_len=32):
    """Rows of two packed documents each: labels are -100 at every document start."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], (rows, seq_len), generator=gen)
    half = seq_len // 2
    position_ids = torch.cat([torch.arange(half), torch.arange(seq_len - half)]).repeat(rows, 1)
    labels = ids.masked_fill(position_ids == 0, IGNORE)
    batch = dict(input_ids=ids, position_ids=position_ids, labels=labels)
    return {key: value.to(device) for key, value in batch.items()}


def loss_and_grads(model, batch, **kwargs):
    model.zero_grad(set_to_none=True)
    out = model(**batch, **kwargs)
    out.loss.backward()
    return out.loss.detach(), [p.grad.detach().cpu() for p in model.parameters()]


def test_training_on_cuda_equals_training_on_cpu(model):
    """fp32: the same loss and gradients on both devices (packed documents, chunked loss)."""
    cpu_model = copy.deepcopy(model).train()
    cuda_model = copy.deepcopy(model).to(CUDA).train()
    cpu_loss, cpu_grads = loss_and_grads(cpu_model, packed_batch("cpu"))
    cuda_loss, cuda_grads = loss_and_grads(cuda_model, packed_batch(CUDA))
    torch.testing.assert_close(cuda_loss.cpu(), cpu_loss, atol=1e-4, rtol=1e-4)
    for got, want in zip(cuda_grads, cpu_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)


def test_bf16_autocast_loss_without_logits_equals_the_loss_from_logits(model):
    cuda_model = copy.deepcopy(model).to(CUDA).train()
    batch = packed_batch(CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fused, fused_grads = loss_and_grads(cuda_model, batch)
        plain, plain_grads = loss_and_grads(cuda_model, batch, skip_logits=False)
    assert fused.dtype == torch.float32 and torch.isfinite(fused)
    torch.testing.assert_close(fused, plain, atol=2e-3, rtol=2e-3)
    for got, want in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(got, want, atol=2e-3, rtol=2e-2)


# Dynamo itself instantiates torch.autograd.Function when tracing a custom one, and
# Inductor's first import defines a TorchScript class (both deprecation warnings of torch's).
@pytest.mark.filterwarnings("ignore:.*should not be instantiated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_compiled_training_step_matches_eager(model):
    eager = copy.deepcopy(model).to(CUDA).train()
    compiled = copy.deepcopy(model).to(CUDA).train()
    batch = packed_batch(CUDA)
    torch._dynamo.reset()
    try:
        compiled.compile(fullgraph=True)
        eager_loss, eager_grads = loss_and_grads(eager, batch)
        compiled_loss, compiled_grads = loss_and_grads(compiled, batch)
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(compiled_loss, eager_loss, atol=1e-4, rtol=1e-4)
    for got, want in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-3)


def test_trainer_picks_cuda_and_trains_in_bf16(model, tmp_path):
    """The Trainer on its defaults: CUDA chosen without being named, fp32 weights under
    bf16 autocast, and the loss falls on a small repeated set."""
    rows = [{k: v.cpu() for k, v in packed_batch("cpu", rows=1).items()} for _ in range(8)]
    for i, row in enumerate(rows):
        row["input_ids"] = torch.roll(row["input_ids"], i, dims=1)
        row["labels"] = row["input_ids"].masked_fill(row["position_ids"] == 0, IGNORE)
    dataset = [{k: v[0] for k, v in row.items()} for row in rows]
    args = TrainingArguments(
        str(tmp_path), per_device_train_batch_size=4, max_steps=30, learning_rate=3e-3,
        bf16=True, logging_steps=1, save_strategy="no", report_to="none",
        lr_scheduler_type="constant",
    )  # fmt: skip
    trainer = Trainer(copy.deepcopy(model).train(), args, train_dataset=dataset)
    trainer.train()
    assert trainer.device.type == "cuda"
    assert all(p.device.type == "cuda" and p.dtype == torch.float32
               for p in trainer.model.parameters())  # fmt: skip
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A model whose vocabulary is a trained tokenizer's, on the device, with a peaked
    next-token distribution (weights x4) so no near-tie can flip a greedy choice."""
    tokenizer = train_tokenizer(300)
    sizes = {**TINY, "vocab_size": len(tokenizer)}
    model = build_template("llama_4m.yaml", tmp_path_factory.mktemp("served") / "m", **sizes)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(4.0)
    return model.to(CUDA).eval(), tokenizer


def test_scheduler_on_cuda_decodes_what_generate_decodes(served):
    """The server's batched decode (KV cache rows, padding, grouped attention) on the
    device, against ``generate()`` on the same device, prompt by prompt."""
    model, tokenizer = served
    prompts = [tokenizer.encode(text) for text in ("def f(x):", "import os\n", "class A", "x = [")]
    stop = (tokenizer.eos_token_id,)
    scheduler = BatchScheduler(model, tokenizer, max_batch_size=4)
    scheduler.start()
    try:
        results = scheduler.generate(
            prompts, SamplingParams(max_tokens=12, temperature=0.0, stop_token_ids=stop)
        )
    finally:
        scheduler.stop()
    for prompt, (text, _, generated) in zip(prompts, results, strict=True):
        with torch.no_grad():
            output = model.generate(
                torch.tensor([prompt], device=CUDA), max_new_tokens=12, do_sample=False,
                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            )  # fmt: skip
        expected = output[0, len(prompt) :].tolist()
        assert generated == len(expected)
        assert text == tokenizer.decode(expected, skip_special_tokens=True)
