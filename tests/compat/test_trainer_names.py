"""The original Forgather's central training names, used as its configs use them, train a model.

`TrainingScript`, `Trainer`/`TrainingArguments` (with the original's field
spellings), `DataCollatorForCausalLM`, `CausalLoss`, `LinearCrossEntropyLoss`,
`InfiniteLRScheduler`, `DistributedEnvironment` and the callbacks, on a tiny
model, a few steps: the loss falls, and checkpoints, the JSON log and the
TensorBoard scalars are written where and how the original wrote them.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from forgather.ml.data_collator import DataCollatorForCausalLM
from forgather.ml.distributed import DistributedEnvironment, main_process_first
from forgather.ml.loss import CausalLoss, LinearCrossEntropyLoss
from forgather.ml.optim.infinite_lr_scheduler import InfiniteLRScheduler
from forgather.ml.trainer import (
    IntervalStrategy,
    Trainer,
    TrainingArguments,
    enable_hf_activation_checkpointing,
)
from forgather.ml.trainer.callbacks import (
    InfoCallback,
    JsonLogger,
    PeakMemory,
    ProgressCallback,
    TBLogger,
    TextgenCallback,
    TrainerCallback,
    TrainerControlCallback,
)
from forgather.ml.training_script import TrainingScript

from .trainer_project import tiny_parts

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_parts.make_tokenizer()


def original_args(tmp_path: Path, **overrides) -> TrainingArguments:
    """Trainer arguments as the original's configs spell them."""
    settings = dict(
        output_dir=str(tmp_path / "model"),
        logging_dir=str(tmp_path / "model" / "runs" / "log"),
        save_strategy="steps", save_steps=5, save_safetensors=False, save_total_limit=3,
        save_on_each_node=False, save_rng_state=True, eval_strategy=IntervalStrategy.STEPS,
        eval_steps=5, max_eval_steps=2, logging_steps=2, max_steps=10, num_train_epochs=1,
        per_device_train_batch_size=8, per_device_eval_batch_size=8, seed=42,
        dataloader_num_workers=0, max_grad_norm=None, gradient_checkpointing=False,
        float32_matmul_precision="highest", default_dtype="float32", construct_model_on="default",
        resume_from_checkpoint=False, lr_scheduler_kwargs=None,
    )  # fmt: skip
    settings.update(overrides)
    return TrainingArguments(**settings)


def original_trainer(tmp_path, tokenizer, callbacks=(), **overrides) -> Trainer:
    vocab = len(tokenizer)
    return Trainer(
        args=original_args(tmp_path, **overrides.pop("args", {})),
        model_init=functools.partial(tiny_parts.build_model, vocab),
        data_collator=DataCollatorForCausalLM(
            tokenizer=tokenizer, return_tensors="pt", truncation=True, max_length=32
        ),
        train_dataset=tiny_parts.make_dataset(tokenizer, 0, 80),
        eval_dataset=tiny_parts.make_dataset(tokenizer, 80, 16),
        processing_class=tokenizer,
        callbacks=list(callbacks),
        compute_loss_func=CausalLoss(),
        distributed_env=DistributedEnvironment(),
        **{
            "optimizer_factory": functools.partial(torch.optim.AdamW, lr=1e-2),
            "lr_scheduler_factory": functools.partial(
                InfiniteLRScheduler, warmup_steps=2, cooldown_steps=6, constant_lr=1e-3
            ),
            **overrides,
        },
    )


def losses(history: list[dict]) -> list[float]:
    return [entry["loss"] for entry in history if "loss" in entry]


def test_training_script_runs_the_trainer_with_the_originals_callbacks(tmp_path, tokenizer, capsys):
    from torch.utils.tensorboard import SummaryWriter

    logdir = tmp_path / "model" / "runs" / "log"
    writer = SummaryWriter(str(logdir))
    info = {"name": "tiny", "description": "original names"}
    callbacks = [
        ProgressCallback(use_tqdm=None, output_stream="stdout"),
        InfoCallback(verbose=False),
        JsonLogger(**info),
        TBLogger(writer, **info),
        PeakMemory(show_details=False, do_log=False),
        TextgenCallback(
            summary_writer=writer, prompts=["def wrap"], max_new_tokens=4, generation_steps=5,
            generation_config={"identity": "generation_config", "do_sample": True, "top_k": 20,
                               "top_p": 0.9, "temperature": 0.7},
        ),
    ]  # fmt: skip
    trainer = original_trainer(tmp_path, tokenizer, callbacks)
    meta = {"config_name": "tiny", "output_dir": str(tmp_path / "model")}
    script = TrainingScript(
        meta=meta, do_train=True, do_eval=True, do_save=True,
        distributed_env=trainer.distributed_env, trainer=trainer,
    )  # fmt: skip
    results = script.run()

    assert results["train"].global_step == 10
    assert "eval_loss" in results["eval"]
    history = trainer.state.log_history
    assert losses(history)[-1] < losses(history)[0]  # it learned
    checkpoints = tmp_path / "model" / "checkpoints"
    assert sorted(os.listdir(checkpoints)) == ["checkpoint-10", "checkpoint-5"]
    assert (tmp_path / "model" / "model.safetensors").is_file()  # do_save

    # JsonLogger: one JSON array with the original's timestamp and global_step, no duplicates.
    entries = json.loads((logdir / "trainer_logs.json").read_text())
    assert all("timestamp" in e and e["global_step"] == e["step"] for e in entries)
    assert [e["global_step"] for e in entries if "loss" in e] == [2, 4, 6, 8, 10]
    assert [os.path.basename(p) for p in logdir.iterdir()].count("trainer_logs.json") == 1

    # TBLogger: the original's scalar names, in the writer the config gave.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logdir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train-loss", "learning-rate", "eval-loss", "eval-perplexity"} <= tags
    assert [e.step for e in events.Scalars("train-loss")] == [2, 4, 6, 8, 10]
    assert "experiment/text_summary" in events.Tags()["tensors"]  # the experiment info

    out = capsys.readouterr().out
    assert "parameters" in out  # InfoCallback
    assert "step 4: loss" in out  # ProgressCallback, lines to stdout (not a terminal)


def test_the_fused_loss_trains_like_the_causal_loss(tmp_path, tokenizer):
    fused = original_trainer(
        tmp_path / "fused", tokenizer,
        fused_loss_factory=functools.partial(LinearCrossEntropyLoss, impl="cce", chunk_size=16),
        args={"save_strategy": "no", "eval_strategy": "no", "max_steps": 4},
    )  # fmt: skip
    plain = original_trainer(
        tmp_path / "plain", tokenizer,
        args={"save_strategy": "no", "eval_strategy": "no", "max_steps": 4},
    )  # fmt: skip
    fused.train()
    plain.train()
    fused_losses, plain_losses = losses(fused.state.log_history), losses(plain.state.log_history)
    assert fused_losses == pytest.approx(plain_losses, rel=1e-4)


def test_training_arguments_take_the_originals_fields(tmp_path):
    args = original_args(
        tmp_path, seed=-1, eval_delay=4, enable_activation_offloading=False,
        sdpa_backend=["math"], sdpa_set_priority=False, detect_anomaly=False,
        dataloader_persistent_workers=False, torch_compile_dynamic=True, overwrite_output_dir=True,
        gc_threshold=0.9, speed_metrics_start_step=1, fuse_optim_with_backward=True,
        restore_optimizer_state=True, epoch_train_steps=100,
    )  # fmt: skip
    assert args.eval_strategy == "steps" and args.max_grad_norm == 0.0
    assert args.seed >= 0 and args.lr_scheduler_kwargs == {}
    assert TrainingArguments().output_dir == "tmp_trainer"  # the original's default


@pytest.mark.parametrize(
    "field, value",
    [
        ("save_rng_state", False),
        ("save_on_each_node", True),
        ("construct_model_on", "meta"),
    ],
)
def test_a_setting_the_trainer_cannot_honour_is_refused_by_name(tmp_path, field, value):
    with pytest.raises(ValueError, match=field):
        original_args(tmp_path, **{field: value})


class _FirstStep(TrainerCallback):
    """Records, as the first step begins, the optimizer's step count, the rate and the data
    position and the next random number."""

    def __init__(self):
        self.trainer = None
        self.seen = None

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        if self.seen is None:
            first_state = next(iter(optimizer.state.values()))
            self.seen = {
                "adam_step": float(first_state["step"]),
                "lr": optimizer.param_groups[0]["lr"],
                "data": self.trainer.batches.state_dict(),
                "rng": torch.rand(1).item(),
            }


def _first_step(tmp_path, tokenizer, **args) -> dict:
    record = _FirstStep()
    trainer = original_trainer(tmp_path, tokenizer, callbacks=[record], args=args)
    record.trainer = trainer
    trainer.train()
    return record.seen


@pytest.mark.parametrize("restore", [True, False])
def test_restore_state_settings_choose_what_a_resumed_run_takes_back(tmp_path, tokenizer, restore):
    fresh = _first_step(tmp_path / "fresh", tokenizer, max_steps=5)
    _first_step(tmp_path / "run", tokenizer, max_steps=5)  # saves checkpoint-5
    parts = ("optimizer", "scheduler", "dataset", "rng")
    resumed = _first_step(
        tmp_path / "run", tokenizer, max_steps=10, resume_from_checkpoint=True,
        **{f"restore_{part}_state": restore for part in parts},
    )  # fmt: skip
    assert resumed["adam_step"] == (5.0 if restore else 0.0)
    for key in ("lr", "data", "rng"):
        assert (resumed[key] == fresh[key]) is not restore, key


def test_a_fresh_optimizer_on_a_restored_schedule_takes_the_schedules_rate(tmp_path, tokenizer):
    first = _first_step(tmp_path / "a", tokenizer, max_steps=5)
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # the same checkpoint-5, twice
    resumed = _first_step(tmp_path / "a", tokenizer, max_steps=10, resume_from_checkpoint=True)
    fresh_optimizer = _first_step(
        tmp_path / "b", tokenizer, max_steps=10, resume_from_checkpoint=True,
        restore_optimizer_state=False,
    )  # fmt: skip
    assert (resumed["adam_step"], fresh_optimizer["adam_step"]) == (5.0, 0.0)
    assert fresh_optimizer["lr"] == resumed["lr"] != first["lr"]


def test_load_best_model_at_end_keeps_and_loads_the_best_checkpoint(tmp_path, tokenizer):
    from safetensors.torch import load_file

    from forgather.ml.checkpoint_layout import MODEL_FILE, list_checkpoints

    # greater_is_better=True on a falling loss: the best checkpoint is the first one, which
    # save_total_limit=1 would otherwise delete, and not the weights training ended with.
    trainer = original_trainer(
        tmp_path, tokenizer,
        args=dict(max_steps=15, save_steps=5, eval_steps=5, save_total_limit=1,
                  load_best_model_at_end=True, greater_is_better=True),
    )  # fmt: skip
    trainer.train()
    evals = {e["step"]: e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e}
    best_step = max(evals, key=evals.get)
    assert best_step == 5 and len(evals) == 3
    best = os.path.join(trainer.args.checkpoints_dir, f"checkpoint-{best_step}")
    assert trainer.state.best_model_checkpoint == best
    assert trainer.state.best_metric == evals[best_step]
    assert best in list_checkpoints(trainer.args.checkpoints_dir)  # kept past the limit
    saved = load_file(os.path.join(best, MODEL_FILE))
    for name, tensor in trainer.model.state_dict().items():
        if name in saved:
            assert torch.equal(tensor, saved[name]), name


def test_load_best_model_at_end_needs_an_evaluation_at_every_save(tmp_path):
    with pytest.raises(ValueError, match="save_steps to be a multiple of eval_steps"):
        original_args(tmp_path, load_best_model_at_end=True, save_steps=5, eval_steps=3)
    with pytest.raises(ValueError, match="eval_strategy and save_strategy to be the same"):
        original_args(tmp_path, load_best_model_at_end=True, eval_strategy="no")


def test_eval_delay_and_gradient_checkpointing_are_honoured(tmp_path, tokenizer):
    calls = []

    def enable(rank, model):
        calls.append((rank, type(model).__name__))

    trainer = original_trainer(
        tmp_path, tokenizer, enable_activation_checkpoint_fn=enable,
        args={"eval_delay": 3, "eval_steps": 2, "max_steps": 6, "save_strategy": "no",
              "gradient_checkpointing": True},
    )  # fmt: skip
    trainer.train()
    assert calls == [(0, "TinyCausalLM")]
    evaluated = [e["step"] for e in trainer.state.log_history if "eval_loss" in e]
    assert evaluated == [4, 6]  # step 2 is before eval_delay
    with pytest.raises(TypeError, match="gradient_checkpointing_enable"):
        enable_hf_activation_checkpointing(0, torch.nn.Linear(2, 2))


def test_named_parameter_factories_and_hf_optimizer_arguments(tmp_path, tokenizer):
    from forgather.ml.optim.opt_utils import make_grouped_optimizer

    grouped = functools.partial(
        make_grouped_optimizer, opt_ctor=torch.optim.AdamW,
        group_map=[(r"bias|embed", "no_decay"), (r".", "decay")],
        group_config={"no_decay": {"weight_decay": 0.0}, "decay": {"weight_decay": 0.1}},
        opt_kwargs={"lr": 1e-2},
    )  # fmt: skip
    trainer = original_trainer(
        tmp_path, tokenizer, args={"max_steps": 2, "save_strategy": "no", "eval_strategy": "no"}
    )
    trainer.optimizer_factory = grouped
    trainer.train()
    names = [g["param_names"] for g in trainer.optimizer.param_groups]
    assert names[0] == ["embed.weight", "rnn.bias_ih_l0", "rnn.bias_hh_l0"]
    assert names[1] == ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "lm_head.weight"]

    hf_style = Trainer(
        args=original_args(tmp_path / "hf", max_steps=1, save_strategy="no", eval_strategy="no"),
        model_init=functools.partial(tiny_parts.build_model, len(tokenizer)),
        train_dataset=tiny_parts.make_dataset(tokenizer, 0, 8),
        data_collator=DataCollatorForCausalLM(tokenizer=tokenizer, return_tensors="pt"),
        optimizer_cls_and_kwargs=(torch.optim.SGD, {"lr": 0.5}),
    )
    hf_style.train()
    assert isinstance(hf_style.optimizer, torch.optim.SGD)


def test_control_callback_takes_the_originals_arguments():
    callback = TrainerControlCallback(job_id="job-1", port=None)
    assert callback.job_id == "job-1" and callback.port == 0
    with pytest.raises(ValueError, match="enable_http"):
        TrainerControlCallback(enable_http=False)


def test_distributed_environment_of_one_process_exports_nothing(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    env = DistributedEnvironment(log_level="WARNING")
    assert (env.rank, env.local_rank, env.world_size, env.device) == (0, 0, 1, env.device)
    assert "WORLD_SIZE" not in os.environ and "MASTER_ADDR" not in os.environ
    env.barrier()
    ran = []
    with main_process_first():
        ran.append(1)
    assert ran == [1]
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    from forgather.ml.distributed import from_env

    assert (from_env().rank, from_env().world_size) == (3, 4)
