"""The training loop in one process: flow control, callbacks, failures, options."""

from __future__ import annotations

import json
import logging
import os
import signal

import pytest
import torch

from forgather.ml.optim import SGD, constant_with_warmup
from forgather.ml.trainer import (
    Trainer,
    TrainerCallback,
    TrainingArguments,
    latest_checkpoint,
    list_checkpoints,
)
from forgather.ml.trainer.callbacks.base import EVENTS
from forgather.ml.trainer.checkpoint import load_model_weights

from . import tiny_lm
from .tiny_lm import FaultyAdamW, make_trainer, step_losses


class Recorder(TrainerCallback):
    """Records every event it sees as (event, step)."""

    def __init__(self):
        self.events = []


def _recorder_method(event):
    def record(self, args, state, control, **kwargs):
        self.events.append((event, state.global_step))

    return record


for _event in EVENTS:
    setattr(Recorder, _event, _recorder_method(_event))


def test_events_and_default_flow(tmp_path):
    recorder = Recorder()
    trainer = make_trainer(str(tmp_path), callbacks=[recorder], max_steps=10, save_steps=4)
    output = trainer.train()
    assert output.global_step == 10 and trainer.state.global_step == 10
    names = [e for e, _ in recorder.events]
    assert names[0] == "on_train_begin" and names[-1] == "on_train_end"
    assert names.count("on_step_end") == 10
    # 64 rows / (4 * 2) = 8 steps per epoch: epoch 1 ends at step 8.
    assert ("on_epoch_end", 8) in recorder.events and names.count("on_epoch_begin") == 2
    assert [s for e, s in recorder.events if e == "on_evaluate"] == [3, 6, 9]
    # Saves every 4 steps, and always at the end.
    assert [s for e, s in recorder.events if e == "on_save"] == [4, 8, 10]
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path / "checkpoints"))] == [
        "checkpoint-4", "checkpoint-8", "checkpoint-10",
    ]  # fmt: skip
    assert trainer.state.epoch == pytest.approx(10 / 8)
    assert trainer.state.num_input_tokens_seen == 10 * 2 * 4 * 16
    assert set(output.metrics) >= {"train_runtime", "train_tokens_per_second"}


def test_callback_requests_evaluate_save_and_stop(tmp_path):
    class Steer(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                control.should_evaluate = control.should_save = True
            if state.global_step == 3:
                control.should_training_stop = True

    trainer = make_trainer(str(tmp_path), callbacks=[Steer()], eval_strategy="no",
                           save_strategy="no")  # fmt: skip
    trainer.train()
    assert trainer.state.global_step == 3
    assert [e["step"] for e in trainer.state.log_history if "eval_loss" in e] == [2]
    assert [os.path.basename(p) for p in list_checkpoints(str(tmp_path / "checkpoints"))] == [
        "checkpoint-2"
    ]


def test_failing_callback_raises_and_restores_signal_handlers(tmp_path):
    class Broken(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 2:
                raise KeyError("callback bug")

    before = signal.getsignal(signal.SIGTERM)
    trainer = make_trainer(str(tmp_path), callbacks=[Broken()])
    with pytest.raises(KeyError, match="callback bug"):
        trainer.train()
    assert trainer.state.global_step == 2
    assert signal.getsignal(signal.SIGTERM) is before


def test_exception_while_saving_keeps_previous_checkpoint(tmp_path):
    trainer = make_trainer(str(tmp_path))
    trainer.optimizer_factory = lambda params: FaultyAdamW(params, lr=3e-3)
    FaultyAdamW.fail_at_step, FaultyAdamW.mode = 8, "raise"
    try:
        with pytest.raises(RuntimeError, match="injected failure while saving step 8"):
            trainer.train()
    finally:
        FaultyAdamW.fail_at_step = -1
    checkpoints = tmp_path / "checkpoints"
    assert sorted(os.listdir(checkpoints)) == ["checkpoint-4"]  # no half-written directory
    model = tiny_lm.make_model(seed=1)
    load_model_weights(model, str(checkpoints / "checkpoint-4" / "model.safetensors"))


def test_sigint_saves_at_step_boundary_and_returns(tmp_path):
    class Interrupt(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 2:
                os.kill(os.getpid(), signal.SIGINT)  # arrives mid-step (step 3)

    trainer = make_trainer(str(tmp_path), callbacks=[Interrupt()], save_strategy="no")
    output = trainer.train()
    assert output.metrics["stopped_by"] == "SIGINT"
    assert trainer.state.global_step == 3
    assert latest_checkpoint(str(tmp_path / "checkpoints")).endswith("checkpoint-3")


def test_save_total_limit_prunes_oldest(tmp_path):
    trainer = make_trainer(str(tmp_path), save_steps=2, save_total_limit=2, eval_strategy="no")
    trainer.train()
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["checkpoint-10", "checkpoint-12"]


def test_resume_true_without_checkpoint_starts_fresh_and_bad_path_fails(tmp_path, caplog):
    trainer = make_trainer(str(tmp_path), max_steps=2, eval_strategy="no")
    with caplog.at_level(logging.WARNING):
        assert trainer.train(resume_from_checkpoint=True).global_step == 2
    assert f"no checkpoint in {trainer.args.checkpoints_dir}, so this is a new run" in caplog.text
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        make_trainer(str(tmp_path)).train(resume_from_checkpoint=str(tmp_path / "nope"))


def test_checkpoint_weights_keep_ties(tmp_path):
    trainer = make_trainer(str(tmp_path), max_steps=2, eval_strategy="no")
    trainer.train()
    model = tiny_lm.make_model(seed=1)
    load_model_weights(model, str(tmp_path / "checkpoints" / "checkpoint-2" / "model.safetensors"))
    assert model.head.weight is model.embed.weight
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    """Batch 8 in one step == batch 4 accumulated twice (same rows, dropout off)."""

    def final_weights(batch, accumulation, out):
        trainer = make_trainer(
            str(out), max_steps=3, per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation, eval_strategy="no", save_strategy="no",
        )  # fmt: skip
        trainer.model.drop.p = 0.0
        trainer.optimizer_factory = lambda params: SGD(params, lr=0.5)
        trainer.train()
        return trainer.model.state_dict(), step_losses(trainer.state.log_history)

    big, big_losses = final_weights(8, 1, tmp_path / "a")
    small, small_losses = final_weights(4, 2, tmp_path / "b")
    assert big_losses == pytest.approx(small_losses, rel=1e-5)
    for name in big:
        assert torch.allclose(big[name], small[name], atol=1e-5), name


def uneven_collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    """`tiny_lm.collate`, hiding a different number (0 to 12) of leading labels in each row."""
    batch = tiny_lm.collate(samples)
    for row, sample in enumerate(samples):
        batch["labels"][row, : int(sample["input_ids"].sum()) % 13] = -100
    return batch


def test_step_loss_is_the_token_mean_over_uneven_micro_batches(tmp_path):
    """Micro-batches holding different numbers of targets: the loss, its gradient and the
    weights are those of one batch of all their rows, as in Hugging Face's Trainer."""

    def run(batch, accumulation, out):
        trainer = make_trainer(
            str(out), max_steps=3, per_device_train_batch_size=batch,
            gradient_accumulation_steps=accumulation, eval_strategy="no", save_strategy="no",
        )  # fmt: skip
        trainer.data_collator = uneven_collate
        trainer.model.drop.p = 0.0
        trainer.train()
        history = trainer.state.log_history
        grad_norms = {e["step"]: e["grad_norm"] for e in history if "grad_norm" in e}
        return trainer.model.state_dict(), step_losses(history), grad_norms

    targets = [int((uneven_collate(rows)["labels"][:, 1:] != -100).sum())
               for rows in (tiny_lm.token_rows(8)[:4], tiny_lm.token_rows(8)[4:])]  # fmt: skip
    assert len(set(targets)) == 2  # the data are uneven
    big, big_losses, big_norms = run(8, 1, tmp_path / "a")
    small, small_losses, small_norms = run(4, 2, tmp_path / "b")
    assert small_losses == pytest.approx(big_losses, rel=1e-5)
    assert small_norms == pytest.approx(big_norms, rel=1e-5)
    for name in big:
        assert torch.allclose(big[name], small[name], atol=1e-5), name


def test_model_init_is_called_under_the_seed(tmp_path):
    """`model_init` (as in HF): the seed fixes the initial weights, so two runs are equal."""

    def losses(seed, run):
        args = TrainingArguments(
            str(tmp_path / run), max_steps=3, logging_steps=1, save_strategy="no",
            report_to="none", disable_tqdm=True, per_device_train_batch_size=4, seed=seed,
        )  # fmt: skip
        trainer = Trainer(model_init=tiny_lm.TinyLM, args=args,
                          train_dataset=tiny_lm.token_rows(16), data_collator=tiny_lm.collate)  # fmt: skip
        trainer.train()
        return step_losses(trainer.state.log_history)

    first, again, other_seed = losses(5, "a"), losses(5, "b"), losses(6, "c")
    assert first == again  # identical floats: weights, data order and dropout all seeded
    assert first[1] != other_seed[1]


def test_default_optimizer_and_schedule_from_args(tmp_path):
    args = TrainingArguments(
        str(tmp_path), max_steps=6, learning_rate=0.01, lr_scheduler_type="cosine",
        warmup_steps=2, logging_steps=1, save_strategy="no", report_to="none",
        disable_tqdm=True, per_device_train_batch_size=4,
    )  # fmt: skip
    trainer = Trainer(tiny_lm.make_model(), args, train_dataset=tiny_lm.token_rows(16),
                      data_collator=tiny_lm.collate)  # fmt: skip
    trainer.train()
    lrs = [e["learning_rate"] for e in trainer.state.log_history if "learning_rate" in e]
    assert lrs == pytest.approx([0.005, 0.01, 0.01, 0.0085355, 0.005, 0.0014645], rel=1e-4)
    assert type(trainer.optimizer).__name__ == "AdamW"
    no_decay = trainer.optimizer.param_groups[1]
    assert no_decay["weight_decay"] == 0.0 and all(p.dim() < 2 for p in no_decay["params"])


def test_num_train_epochs_and_epoch_strategies(tmp_path):
    trainer = make_trainer(
        str(tmp_path), max_steps=-1, num_train_epochs=1.5, eval_strategy="epoch",
        save_strategy="epoch", logging_strategy="epoch",
    )  # fmt: skip
    trainer.train()
    assert trainer.state.max_steps == 12  # ceil(1.5 * 16 batches / 2)
    assert [e["step"] for e in trainer.state.log_history if "eval_loss" in e] == [8]
    # Epoch 1 ends at step 8; the end of training always logs and saves.
    assert [e["step"] for e in trainer.state.log_history if "loss" in e] == [8, 12]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["checkpoint-12", "checkpoint-8"]


def test_bf16_autocast_trains_fp32_weights(tmp_path):
    trainer = make_trainer(str(tmp_path), bf16=True, max_steps=4, eval_strategy="no",
                           save_strategy="no")  # fmt: skip
    trainer.train()
    losses = list(step_losses(trainer.state.log_history).values())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_json_log_and_memory(tmp_path):
    trainer = make_trainer(str(tmp_path), max_steps=4)
    trainer.train()
    logged = json.loads((tmp_path / "runs" / "run" / "trainer_logs.json").read_text())
    assert logged == json.loads(json.dumps(trainer.state.log_history))
    assert all(e["peak_rss_mib"] > 10 for e in logged)
    assert logged[-1]["train_runtime"] > 0


def test_constructor_errors(tmp_path):
    with pytest.raises(ValueError, match="either a model or a model_init"):
        Trainer(tiny_lm.make_model(), TrainingArguments(str(tmp_path)), model_init=tiny_lm.TinyLM)
    with pytest.raises(TypeError, match="needs args"):
        Trainer(tiny_lm.make_model())
    with pytest.raises(ValueError, match="needs an eval_dataset"):
        Trainer(tiny_lm.make_model(), TrainingArguments(str(tmp_path), eval_strategy="steps"))
    with pytest.raises(ValueError, match="must be one of"):
        TrainingArguments(str(tmp_path), save_strategy="sometimes")
    with pytest.raises(ValueError, match="report_to"):
        TrainingArguments(str(tmp_path), report_to=["wandb"])
    for steps in (0, -2):  # 0 would silently train every epoch, as -1 asks to
        with pytest.raises(ValueError, match="max_steps must be >= 1, or -1"):
            TrainingArguments(str(tmp_path), max_steps=steps)
    args = TrainingArguments(str(tmp_path), logging_steps=7, report_to="all")
    assert args.eval_steps == 7 and args.report_to == ["json", "tensorboard"]
    assert args.logging_dir.startswith(os.path.join(str(tmp_path), "runs"))


def test_custom_scheduler_factory_is_checkpointed(tmp_path):
    trainer = make_trainer(str(tmp_path), max_steps=3, eval_strategy="no")
    trainer.lr_scheduler_factory = lambda opt: constant_with_warmup(opt, warmup_steps=10)
    trainer.train()
    saved = torch.load(tmp_path / "checkpoints" / "checkpoint-3" / "scheduler.pt",
                       weights_only=True)  # fmt: skip
    assert saved["last_epoch"] == 3 and saved["lr_lambdas"][0]["warmup_steps"] == 10


def test_a_tokenizer_larger_than_the_models_vocabulary_is_refused_before_training(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.serve.tiny_model import train_tokenizer

    tokenizer = train_tokenizer(300)
    config = LlamaConfig(vocab_size=256, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2)  # fmt: skip
    trainer = Trainer(LlamaForCausalLM(config), TrainingArguments(str(tmp_path), max_steps=1),
                      processing_class=tokenizer)  # fmt: skip
    with pytest.raises(ValueError, match=f"the tokenizer has {len(tokenizer)} tokens but the "
                       "model's embedding has 256 rows"):  # fmt: skip
        trainer.train()
