"""Exact resume in a new process: after a requested stop, a SIGTERM, and a crash mid-save.

Every run trains `tiny_lm.py`'s model (12 optimizer steps that cross an epoch
boundary, dropout on, checkpoints every 4 steps); each interrupted run is
compared with one uninterrupted run: the per-step training losses and the
evaluation losses must be identical floats. The run that is interrupted or the
one that resumes is a real subprocess (never both, to keep the tests fast).
Last, resuming with a larger `max_steps` continues on a schedule for the new horizon.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from forgather.ml.optim import AdamW, get_scheduler
from forgather.ml.trainer import latest_checkpoint, list_checkpoints

from . import tiny_lm

SCRIPT = Path(__file__).with_name("tiny_lm.py")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def train(output_dir: Path, run: str, *args: str) -> tuple[list[int], dict]:
    """Run the script to completion; return the steps it printed and its history file."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(output_dir), "--run", run, *args],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return printed_steps(proc.stdout), load_history(output_dir, run)


def printed_steps(stdout: str) -> list[int]:
    return [int(line.split()[1]) for line in stdout.splitlines() if line.startswith("STEP ")]


def load_history(output_dir: Path, run: str) -> dict:
    return json.loads((output_dir / f"history-{run}.json").read_text())


def losses(history: dict, key: str = "loss") -> dict[int, float]:
    return {e["step"]: e[key] for e in history["log_history"] if key in e}


def train_here(capsys, output_dir: Path, run: str, **kwargs) -> tuple[list[int], dict]:
    """Run in this process; return the steps it printed and its history."""
    capsys.readouterr()
    history = tiny_lm.run(str(output_dir), run, **kwargs)
    return printed_steps(capsys.readouterr().out), history


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> dict:
    """The uninterrupted reference run."""
    history = tiny_lm.run(str(tmp_path_factory.mktemp("straight")), "straight")
    assert len(losses(history)) == 12 and len(losses(history, "eval_loss")) == 4
    return history


def assert_same_run(history: dict, reference: dict) -> None:
    assert losses(history) == losses(reference)
    assert losses(history, "eval_loss") == losses(reference, "eval_loss")


def test_stop_then_resume_in_new_process_is_exact(tmp_path, straight, capsys):
    steps, _ = train_here(capsys, tmp_path, "first", stop_at=5)
    assert steps == [1, 2, 3, 4, 5]
    assert latest_checkpoint(str(tmp_path / "checkpoints")).endswith("checkpoint-5")

    steps, history = train(tmp_path, "second", "--resume")
    assert steps == list(range(6, 13))  # really resumed, not retrained from scratch
    assert_same_run(history, straight)
    # The resumed run's JSON log holds the whole history, the first run's part included.
    logged = json.loads((tmp_path / "runs" / "second" / "trainer_logs.json").read_text())
    assert [e for e in logged if "loss" in e] == [e for e in history["log_history"] if "loss" in e]


def test_sigterm_checkpoints_at_step_boundary_and_resume_is_exact(tmp_path, straight, capsys):
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(tmp_path), "--run", "first", "--delay", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    for line in proc.stdout:
        if line.strip() == "STEP 2":
            proc.send_signal(signal.SIGTERM)
            break
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    first = load_history(tmp_path, "first")
    assert first["metrics"]["stopped_by"] == "SIGTERM"
    stopped_at = max(losses(first))
    assert 2 <= stopped_at < 12
    assert latest_checkpoint(str(tmp_path / "checkpoints")).endswith(f"checkpoint-{stopped_at}")

    steps, history = train_here(capsys, tmp_path, "second", resume=True)
    assert steps == list(range(stopped_at + 1, 13))
    assert_same_run(history, straight)


def test_kill_during_save_keeps_previous_checkpoint_and_resume_uses_it(tmp_path, straight, capsys):
    # The optimizer's state_dict() SIGKILLs the process while checkpoint-8 is being
    # written (after model.safetensors, before optimizer.pt).
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--run", "first", "--kill-in-save-at", "8"],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL
    assert printed_steps(proc.stdout)[-1] == 8
    checkpoints = tmp_path / "checkpoints"
    partial = [p for p in os.listdir(checkpoints) if p.startswith(".tmp-checkpoint-8")]
    assert partial, "the interrupted save should have left its temporary directory"
    assert (checkpoints / partial[0] / "model.safetensors").exists()
    assert not (checkpoints / partial[0] / "optimizer.pt").exists()
    assert [Path(p).name for p in list_checkpoints(str(checkpoints))] == ["checkpoint-4"]

    steps, history = train_here(capsys, tmp_path, "second", resume=True)
    assert steps == list(range(5, 13))  # resumed from checkpoint-4
    assert_same_run(history, straight)
    names = sorted(os.listdir(checkpoints))
    assert names == ["checkpoint-12", "checkpoint-4", "checkpoint-8"]  # debris cleaned up


def test_resume_with_a_larger_max_steps_follows_a_schedule_for_the_new_horizon(tmp_path, caplog):
    """A 4-step linear schedule ends at rate 0; resumed to 8 steps, training goes on at the
    rates of an 8-step schedule (what Hugging Face's Trainer does), and the log says so."""

    def trainer(max_steps: int, **overrides):
        trainer = tiny_lm.make_trainer(
            str(tmp_path), f"to{max_steps}", max_steps=max_steps, save_steps=4,
            eval_strategy="no", lr_scheduler_type="linear", warmup_steps=2, **overrides,
        )  # fmt: skip
        trainer.lr_scheduler_factory = None  # the schedule the arguments describe
        return trainer

    short = trainer(4)
    short.train()
    assert rates(short.state.log_history)[4] > 0 and short.lr_scheduler.get_last_lr() == [0.0]

    longer = trainer(8, resume_from_checkpoint=True)
    with caplog.at_level(logging.WARNING, logger="forgather.ml.trainer.optimization"):
        longer.train()
    got = rates(longer.state.log_history)
    assert all(got[step] > 0 for step in range(5, 9))
    planned = get_scheduler("linear", torch.optim.SGD([torch.zeros(1)], lr=3e-3), 2, 8)
    expected = {}
    for step in range(1, 9):  # the rate each step of a run planned for 8 steps uses
        expected[step] = planned.get_last_lr()[0]
        planned.optimizer.step()
        planned.step()
    after = range(5, 9)  # steps 1-4 are the first run's, from the checkpoint's log history
    assert [got[s] for s in after] == pytest.approx([expected[s] for s in after], rel=1e-6)
    assert "max_steps=8 (the checkpoint's run had 4)" in caplog.text


def rates(history: list[dict]) -> dict[int, float]:
    return {e["step"]: e["learning_rate"] for e in history if "learning_rate" in e}


def test_resume_says_which_changed_settings_the_checkpoint_overrides(tmp_path, caplog, capsys):
    """A new learning rate, weight decay or batch size in the resumed run's config: the
    restored optimizer and schedule keep the checkpoint's values (as Hugging Face's do),
    and the log now says so instead of dropping the new value without a word."""

    def trainer(lr: float, weight_decay: float, batch: int, **overrides):
        trainer = tiny_lm.make_trainer(
            str(tmp_path), "run", max_steps=8, save_steps=4, eval_strategy="no",
            per_device_train_batch_size=batch, **overrides,
        )  # fmt: skip
        trainer.optimizer_factory = lambda params: AdamW(params, lr=lr, weight_decay=weight_decay)
        return trainer

    first = trainer(3e-3, 0.01, 4)
    first.add_callback(tiny_lm._Report(stop_at=2, delay=0))  # stops (and saves) at step 2
    first.train()
    same = trainer(3e-3, 0.01, 4, resume_from_checkpoint=True)
    same.add_callback(tiny_lm._Report(stop_at=4, delay=0))
    with caplog.at_level(logging.WARNING, logger="forgather.ml.trainer.base_trainer"):
        same.train()
    assert "is not used" not in caplog.text and "per_device_train_batch_size" not in caplog.text

    changed = trainer(1e-3, 0.5, 8, resume_from_checkpoint=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="forgather.ml.trainer.base_trainer"):
        changed.train()
    assert "the learning rate of this run's config (0.001) is not used" in caplog.text
    assert "checkpoint's (0.003)" in caplog.text
    assert "the weight decay of this run's config (0.5) is not used" in caplog.text
    assert "per_device_train_batch_size is 8, the checkpoint's was 4" in caplog.text
    group = changed.optimizer.param_groups[0]  # as the warnings say
    assert group["weight_decay"] == 0.01 and group["initial_lr"] == 3e-3


def test_eval_on_start_evaluates_once_per_run_not_again_on_resume(tmp_path):
    def trainer(**overrides):
        return tiny_lm.make_trainer(str(tmp_path), "run", max_steps=4, save_steps=2,
                                    eval_strategy="no", eval_on_start=True, **overrides)  # fmt: skip

    first = trainer()
    first.add_callback(tiny_lm._Report(stop_at=2, delay=0))
    first.train()
    resumed = trainer(resume_from_checkpoint=True)
    resumed.train()
    evals = [e["step"] for e in resumed.state.log_history if "eval_loss" in e]
    assert evals == [0]  # the first run's, from the checkpoint's history


def test_with_logging_steps_a_stopped_and_resumed_run_logs_what_an_uninterrupted_one_does(tmp_path):
    """The stop between two logs logs its steps at once; on resume that entry is taken back
    and its sums reopen the window, so the next log covers the same steps as without a stop."""

    def trainer(directory: str, **overrides):
        return tiny_lm.make_trainer(str(tmp_path / directory), "run", max_steps=12, save_steps=7,
                                    logging_steps=5, eval_strategy="no", **overrides)  # fmt: skip

    straight = trainer("straight")
    straight.train()
    stopped = trainer("stopped")
    stopped.add_callback(tiny_lm._Report(stop_at=7, delay=0))
    stopped.train()
    assert [e["step"] for e in stopped.state.log_history if "loss" in e] == [5, 7]  # the flush
    resumed = trainer("stopped", resume_from_checkpoint=True)
    resumed.train()

    def entries(t):
        return [(e["step"], e["loss"], e["grad_norm"], e["learning_rate"])
                for e in t.state.log_history if "loss" in e]  # fmt: skip

    want, got = entries(straight), entries(resumed)
    assert [e[0] for e in got] == [e[0] for e in want] == [5, 10, 12]
    for (_, *w), (_, *g) in zip(want, got, strict=True):
        assert g == pytest.approx(w, rel=1e-12)
