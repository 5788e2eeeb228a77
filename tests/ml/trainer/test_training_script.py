"""`TrainingScript.choose_run_dir`: a new run, or the run that holds the newest checkpoint."""

from __future__ import annotations

import os
import time

import pytest

from forgather.ml.trainer import TrainingArguments, TrainingScript


def script(model_dir, resume) -> TrainingScript:
    args = TrainingArguments(str(model_dir), resume_from_checkpoint=resume, report_to="none")
    return TrainingScript(trainer=lambda args: None, args=args, model_dir=str(model_dir))


def checkpoint(model_dir, run: str, step: int, complete: bool = True) -> None:
    path = model_dir / "runs" / run / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if complete:
        (path / "trainer_state.json").write_text("{}")


def test_resume_continues_the_run_holding_the_highest_step(tmp_path):
    checkpoint(tmp_path, "long", 1000)
    checkpoint(tmp_path, "short", 200)
    checkpoint(tmp_path, "crashed", 5000, complete=False)  # no trainer_state.json: not resumable
    old = time.time() - 3600
    os.utime(tmp_path / "runs" / "long", (old, old))  # the run itself is older: steps decide
    assert script(tmp_path, True).choose_run_dir() == tmp_path / "runs" / "long"


@pytest.mark.parametrize("resume", [None, False, True])
def test_otherwise_a_new_run_named_for_the_launch_time(tmp_path, monkeypatch, resume):
    monkeypatch.setenv("FORGATHER_RUN_TIME", "2030-01-01T00-00-00")
    if resume is not True:
        checkpoint(tmp_path, "earlier", 4)  # ignored unless resuming
    assert (
        script(tmp_path, resume).choose_run_dir() == tmp_path / "runs" / "run_2030-01-01T00-00-00"
    )
