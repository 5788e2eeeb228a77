"""`TrainingScript.choose_run_dir`: a new run, or the newest run that holds a checkpoint."""

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


def test_resume_continues_the_newest_run_with_a_checkpoint_and_says_so(tmp_path, capsys):
    """A finished run got further than a newer one stopped early: --resume continues the
    newer one (it used to pick the highest step, train nothing and overwrite the model's
    weights with the older run's), names it, and says how to continue the other."""
    checkpoint(tmp_path, "run_2026-11-01T10-00-00", 1000)  # finished
    checkpoint(tmp_path, "run_2026-11-02T10-00-00", 200)  # stopped at 200
    checkpoint(tmp_path, "run_2026-11-03T10-00-00", 5000, complete=False)  # crashed mid-save
    assert script(tmp_path, True).choose_run_dir() == tmp_path / "runs" / "run_2026-11-02T10-00-00"
    err = capsys.readouterr().err
    assert "resuming run run_2026-11-02T10-00-00 from checkpoint-200" in err
    assert "run_2026-11-01T10-00-00, reached step 1000" in err
    assert (
        str(tmp_path / "runs" / "run_2026-11-01T10-00-00" / "checkpoints" / "checkpoint-1000")
        in err
    )


def test_runs_without_a_time_in_their_name_go_by_their_directory_time(tmp_path):
    checkpoint(tmp_path, "long", 1000)
    checkpoint(tmp_path, "short", 200)
    old = time.time() - 3600
    os.utime(tmp_path / "runs" / "long", (old, old))
    assert script(tmp_path, True).choose_run_dir() == tmp_path / "runs" / "short"


@pytest.mark.parametrize("resume", [None, False, True])
def test_otherwise_a_new_run_named_for_the_launch_time(tmp_path, monkeypatch, resume):
    monkeypatch.setenv("FORGATHER_RUN_TIME", "2030-01-01T00-00-00")
    if resume is not True:
        checkpoint(tmp_path, "earlier", 4)  # ignored unless resuming
    assert (
        script(tmp_path, resume).choose_run_dir() == tmp_path / "runs" / "run_2030-01-01T00-00-00"
    )
