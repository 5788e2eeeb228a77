"""The original Forgather's other training names: losses, collator, optimizers, schedules,
pipeline and Accelerate trainers, checkpoint helpers, each with its own argument spellings."""

from __future__ import annotations

import functools
import math
import os

import pytest
import torch

from forgather.ml.data_collator import DataCollatorForCausalLM
from forgather.ml.loss import CausalLoss, ChunkedCausalLoss, LinearCrossEntropyLoss, RescaleLoss

from .trainer_project import tiny_parts


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_parts.make_tokenizer()


def test_losses_agree_with_cross_entropy_and_the_fused_one_has_its_gradients():
    torch.manual_seed(0)
    head = torch.nn.Linear(8, 50, bias=True)
    hidden = torch.randn(3, 7, 8, requires_grad=True)
    labels = torch.randint(0, 50, (3, 7))
    labels[1] = -100
    labels[0, 3] = -100
    reference = CausalLoss()(head(hidden), labels)
    reference.backward()
    expected = [t.grad.clone() for t in (hidden, head.weight, head.bias)]
    for t in (hidden, head.weight, head.bias):
        t.grad = None
    fused = LinearCrossEntropyLoss(head, impl="liger", chunk_size=4)
    loss = fused(hidden, labels)
    loss.backward()
    assert loss.item() == pytest.approx(reference.item(), rel=1e-5)
    for got, want in zip((hidden.grad, head.weight.grad, head.bias.grad), expected, strict=True):
        torch.testing.assert_close(got, want)
    assert ChunkedCausalLoss(chunk_size=7)(head(hidden), labels).item() == pytest.approx(
        reference.item(), rel=1e-5
    )
    scaled = RescaleLoss(CausalLoss(), 0.5)
    assert scaled(head(hidden), labels).item() == pytest.approx(reference.item() / 2, rel=1e-5)
    with scaled.no_rescale():
        assert scaled(head(hidden), labels).item() == pytest.approx(reference.item(), rel=1e-5)
    with pytest.raises(TypeError, match="cce_impl"):
        LinearCrossEntropyLoss(head, cce_impl="cce")


def test_collator_pads_truncates_and_builds_packed_positions(tokenizer):
    features = [{"input_ids": [5, 6, 7, 8, 9]}, {"input_ids": [5, 6]}]
    batch = DataCollatorForCausalLM(tokenizer=tokenizer, return_tensors="pt")(features)
    pad = tokenizer.pad_token_id
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [5, 6, pad, pad, pad]]
    assert batch["labels"][1].tolist() == [-100, 6, -100, -100, -100]
    fixed = DataCollatorForCausalLM(
        tokenizer=tokenizer, truncation=True, max_length=4, padding="max_length"
    )
    assert fixed(features)["input_ids"].shape == (2, 4)
    inputs, labels = DataCollatorForCausalLM(
        tokenizer=tokenizer, input_name="input", labels_name=None
    )(features)
    assert set(inputs) == {"input", "attention_mask", "position_ids"} and labels.shape == (2, 5)
    packed = DataCollatorForCausalLM(tokenizer=tokenizer)(
        [{"input_ids": [1, 2, 3, 4, 5, 6], "document_starts": [0, 2, 5]}]
    )
    assert packed["position_ids"].tolist() == [[0, 1, 0, 1, 2, 0]]
    eos = tokenizer.eos_token_id
    by_eos = DataCollatorForCausalLM(tokenizer=tokenizer, packed_sequences=True)(
        [{"input_ids": [7, eos, 7, 7, eos, 7]}]
    )
    assert by_eos["position_ids"].tolist() == [[0, 1, 0, 1, 2, 0]]
    with pytest.raises(ValueError, match="model_max_length"):
        DataCollatorForCausalLM(tokenizer=tokenizer, max_length=10**6)
    with pytest.raises(TypeError, match="paddding"):
        DataCollatorForCausalLM(tokenizer=tokenizer, paddding=True)


def test_optimizers_and_schedules_by_the_originals_names():
    from forgather.ml.optim.adafactor import Adafactor
    from forgather.ml.optim.adamw import AdamW
    from forgather.ml.optim.infinite_lr_scheduler import InfiniteLRScheduler
    from forgather.ml.optim.multiopt import make_re_multiopt
    from forgather.ml.optim.sgd import SGD
    from forgather.ml.sequential_lr_factory import sequential_lr_factory

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 2))
    params = list(model.named_parameters())
    for opt in (
        AdamW(params, lr=1e-3, torch_compile=False),
        SGD(params, lr=0.1),
        Adafactor(params, lr=1e-3, weight_decay=0.001, betas=(0.9, 0.999), use_triton=True),
    ):
        model(torch.randn(2, 4)).sum().backward()
        opt.step()
        opt.zero_grad()
    with pytest.raises(ValueError, match="relative_step"):
        Adafactor(params, relative_step=True)

    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    schedule = InfiniteLRScheduler(opt, warmup_steps=2, cooldown_steps=4, constant_lr=0.1)
    rates = []
    for _ in range(8):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    expected = [0.0, 0.5, 1.0, 0.1 + 0.9 * (1 + math.cos(math.pi / 4)) / 2, 0.55]
    assert rates[:5] == pytest.approx(expected) and rates[6:] == pytest.approx([0.1, 0.1])

    sequential = sequential_lr_factory(
        opt,
        schedulers=[
            functools.partial(torch.optim.lr_scheduler.ConstantLR, factor=0.5, total_iters=2),
            functools.partial(torch.optim.lr_scheduler.ConstantLR, factor=1.0),
        ],
        milestones=[2],
    )
    assert isinstance(sequential, torch.optim.lr_scheduler.SequentialLR)

    multi = make_re_multiopt(
        model.named_parameters(),
        optimizer_map=[(r"bias", "bias"), (r".", "rest")],
        factories={
            "bias": functools.partial(torch.optim.SGD, lr=0.1),
            "rest": functools.partial(torch.optim.AdamW, lr=1e-3),
        },
    )
    InfiniteLRScheduler(multi, warmup_steps=4)  # a schedule drives every inner optimizer
    assert [g["lr"] for o in multi.optimizers for g in o.param_groups] == [0.0, 0.0]
    multi.load_state_dict(multi.state_dict())


def test_pipeline_names_build_our_pipeline_trainer(tmp_path):
    from torch.distributed.pipelining import Schedule1F1B

    from forgather.ml.trainer.parallel.pipeline_trainer import PipelineTrainer as Ours
    from forgather.ml.trainer.pipeline import (
        PipelineTrainer,
        PipelineTrainingArguments,
        create_automatic_splitter,
        create_manual_causal_lm_splitter,
        insert_activation_checkpoints,
    )

    args = PipelineTrainingArguments(
        output_dir=str(tmp_path), n_microbatches=2, stages_per_rank=1, is_multistage=False,
        save_safetensors=False, pp_stage_type="loop", eval_strategy="no",
    )  # fmt: skip
    splitter = create_automatic_splitter({"layer_stack.layers.2": "beginning"})
    assert splitter.split_points == ("layers.2",)
    trainer = PipelineTrainer(
        args=args, model_splitter=create_manual_causal_lm_splitter(),
        pipe_schedule_factory=functools.partial(Schedule1F1B), model_init=tiny_parts.build_model,
        distributed_env=None,
    )  # fmt: skip
    assert isinstance(trainer, Ours)
    assert (trainer.schedule_name, trainer.n_microbatches) == ("1F1B", 2)
    with pytest.raises(ValueError, match="input_weight"):
        create_manual_causal_lm_splitter(input_weight=2)

    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(2)])
    names = list(model.state_dict())
    insert_activation_checkpoints(0, model, r"^layers\.(\d+)$")
    assert type(model.layers[0]).__name__ == "CheckpointWrapper"
    assert list(model.state_dict()) == names  # checkpoints keep their names


def test_accelerate_names_build_our_accel_trainer(tmp_path):
    from forgather.ml.trainer.accelerate import AccelDistEnv, AccelTrainer, AccelTrainingArguments
    from forgather.ml.trainer.parallel.accel_trainer import AccelTrainer as Ours

    args = AccelTrainingArguments(output_dir=str(tmp_path), save_safetensors=True)
    trainer = AccelTrainer(args=args, accelerator=None, model_init=tiny_parts.build_model)
    assert isinstance(trainer, Ours) and trainer.accelerator is None
    assert AccelDistEnv.__name__ == "DistributedEnvironment"


def test_checkpoint_helpers_on_our_layout(tmp_path):
    from forgather.ml.no_init_weights import no_init_weights
    from forgather.ml.sharded_checkpoint import (
        create_pretrained_symlinks,
        find_latest_checkpoint,
        load_checkpoint,
        save_checkpoint,
    )
    from forgather.ml.utils import default_dtype

    torch.manual_seed(0)
    model = tiny_parts.build_model(32)
    for step in (2, 4):
        save_checkpoint(str(tmp_path / "checkpoints" / f"checkpoint-{step}"), model)
    assert find_latest_checkpoint(str(tmp_path)).endswith("checkpoint-4")
    with no_init_weights():
        fresh = tiny_parts.build_model(32)
    load_checkpoint(find_latest_checkpoint(str(tmp_path)), fresh, device="cpu")
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters(), strict=True)
    )
    (link,) = create_pretrained_symlinks(str(tmp_path))
    assert os.path.realpath(link).endswith(os.path.join("checkpoint-4", "model.safetensors"))
    with default_dtype(torch.bfloat16):
        assert torch.nn.Linear(2, 2).weight.dtype == torch.bfloat16
    assert torch.get_default_dtype() == torch.float32
