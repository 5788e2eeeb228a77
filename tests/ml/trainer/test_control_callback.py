"""`TrainerControlCallback` in one process: commands from the real client reach the
loop at a known step; the registry entry follows the job from start to end.

Commands are sent from inside the run by a callback (`Sender`) at the start of
a chosen step, so the step they are applied at is exact: the control callback
takes them at the end of that same step. The multi-process behaviour (every
rank at the same step) is tested on real `forgather train` jobs in
tests/control/test_live_jobs.py.
"""

from __future__ import annotations

import logging
import os
import stat

import pytest

from forgather import control
from forgather.ml.trainer import TrainerCallback, list_checkpoints
from forgather.ml.trainer.callbacks import TrainerControlCallback, TrainingAborted
from forgather.ml.trainer.state import TrainerControl, TrainerState

from .tiny_lm import make_trainer


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGATHER_STATE_DIR", str(tmp_path / "state"))


class Sender(TrainerCallback):
    """Sends commands through `forgather.control` at the start of given steps.

    Args:
        plan: step -> commands sent when that step begins (it is then applied
            at that step's end).
    """

    def __init__(self, plan: dict[int, list[str]]) -> None:
        self.plan = plan
        self.replies: list[dict] = []
        self.statuses: dict[int, dict] = {}

    def on_step_begin(self, args, state, control_, **kwargs):
        step = state.global_step + 1  # the step about to run
        (job,) = control.list_jobs()
        self.statuses[step] = control.status(job.job_id[:8])
        for command in self.plan.get(step, []):
            self.replies.append(control.send(job, command))


def _train(tmp_path, plan, **overrides):
    callback, sender = TrainerControlCallback("unit test"), Sender(plan)
    settings = {"max_steps": 50, "save_steps": 1000, "eval_strategy": "no"}
    trainer = make_trainer(
        str(tmp_path / "out"), callbacks=[callback, sender], **{**settings, **overrides}
    )
    return trainer, callback, sender


def _checkpoints(trainer) -> list[int]:
    return [int(p.rsplit("-", 1)[1]) for p in list_checkpoints(trainer.args.checkpoints_dir)]


def test_save_then_stop(tmp_path, caplog):
    trainer, callback, sender = _train(tmp_path, {3: ["save"], 6: ["stop"]})
    with caplog.at_level(logging.WARNING):
        output = trainer.train()
    assert output.global_step == 6
    assert callback.applied == [(3, "save"), (6, "stop")]
    assert _checkpoints(trainer) == [3, 6]
    assert [r["accepted"] for r in sender.replies] == ["save", "stop"]
    assert "forgather control: save at step 3 (rank 0 of 1)" in caplog.messages
    (job,) = control.list_jobs()
    assert (job.ended, job.end_step, job.config) == ("stopped", 6, "unit test")
    with pytest.raises(control.ControlError, match="has ended"):
        control.send(job, "save")


def test_commands_sent_together_apply_one_per_step(tmp_path):
    trainer, callback, _ = _train(tmp_path, {2: ["save", "save-stop"]})
    assert trainer.train().global_step == 3
    assert callback.applied == [(2, "save"), (3, "save-stop")]
    assert _checkpoints(trainer) == [2, 3]


def test_abort_ends_without_a_checkpoint(tmp_path):
    trainer, callback, _ = _train(tmp_path, {4: ["abort"]})
    with pytest.raises(TrainingAborted, match="at step 4"):
        trainer.train()
    assert callback.applied == [(4, "abort")]
    assert _checkpoints(trainer) == []
    (job,) = control.list_jobs()
    assert (job.ended, job.end_step) == ("aborted", 4)
    assert callback.server is None  # it stopped serving


def test_status_reports_progress_and_the_last_checkpoint(tmp_path):
    trainer, _, sender = _train(tmp_path, {3: ["save"]}, max_steps=6, logging_steps=1)
    trainer.train()
    first, later = sender.statuses[2], sender.statuses[5]
    assert (first["state"], first["step"], first["max_steps"]) == ("running", 1, 6)
    assert later["step"] == 4 and later["epoch"] > first["epoch"]
    assert later["last_checkpoint"].endswith("checkpoint-3")
    for key in ("loss", "learning_rate", "tokens_per_second"):
        assert later[key] > 0, key
    assert later["eta_seconds"] >= 0  # seconds left at the pace so far
    assert sender.replies == [{"accepted": "save", "step": 2}]


def test_save_evaluates_when_asked(tmp_path):
    evaluated = []

    class Evaluations(TrainerCallback):
        def on_evaluate(self, args, state, control_, **kwargs):
            evaluated.append(state.global_step)

    callback = TrainerControlCallback(evaluate_on_save=True)
    trainer = make_trainer(
        str(tmp_path / "out"), callbacks=[callback, Sender({2: ["save"]}), Evaluations()],
        max_steps=4, save_steps=1000, eval_strategy="no",
    )  # fmt: skip
    trainer.train()
    assert evaluated == [2]


def test_a_finished_job_leaves_a_private_entry_until_cleanup(tmp_path):
    trainer, callback, _ = _train(tmp_path, {}, max_steps=3)
    trainer.train()
    (job,) = control.list_jobs()
    assert (job.ended, job.end_step, job.pid) == ("finished", 3, os.getpid())
    assert stat.S_IMODE(os.stat(job.path).st_mode) == 0o600
    assert control.status(job)["state"] == "finished"
    assert [j.job_id for j in control.cleanup()] == [job.job_id]
    assert control.list_jobs() == []


def test_warns_when_processes_were_launched_without_a_process_group(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WORLD_SIZE", "2")
    trainer, callback, _ = _train(tmp_path, {}, max_steps=1)
    # The one-process Trainer refuses to be one of several (each would train alone) ...
    with pytest.raises(RuntimeError, match="Trainer trains in one process, but this is one of 2"):
        trainer.train()
    assert not os.path.exists(trainer.args.checkpoints_dir)
    # ... and a loop of the user's own that drives the callback is warned.
    with caplog.at_level(logging.WARNING):
        callback.on_train_begin(trainer.args, TrainerState(max_steps=1), TrainerControl())
        callback.on_train_end(trainer.args, TrainerState(max_steps=1), TrainerControl())
    assert any("commands reach rank 0 only" in m for m in caplog.messages)
