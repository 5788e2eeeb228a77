"""`TrainingScript.choose_run_dir`: a new run, or the newest run that holds a checkpoint."""

from __future__ import annotations

import os
import time

import pytest

from forgather.ml.trainer import TrainingArguments, TrainingScript


def script(model_dir, resume) -> TrainingScript:
    args = TrainingArguments(str(model_dir), resume_from_checkpoint=resume, report_to="none")
    return TrainingScript(trainer=lambda args: None, args=args, model_dir=str(model_dir))


def tiny_training(model_dir, **options) -> TrainingScript:
    """A script that really trains `tiny_lm` on 16 rows, 8 a step (`options`: its arguments)."""
    from forgather.ml.trainer import Trainer
    from tests.ml.trainer.tiny_lm import collate, make_model, token_rows

    args = TrainingArguments(str(model_dir), per_device_train_batch_size=8, eval_strategy="no",
                             report_to="none", disable_tqdm=True, torch_threads=1, **options)  # fmt: skip
    return TrainingScript(
        trainer=lambda args: Trainer(model=make_model(), args=args, train_dataset=token_rows(16),
                                     data_collator=collate),
        args=args, model_dir=str(model_dir), run_name="tiny",
    )  # fmt: skip


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


def test_resuming_a_run_that_reached_its_last_step_trains_nothing_and_says_so(
    tmp_path, monkeypatch, capsys
):
    """An epoch-based run (2 steps) resumed once finished: the script says why nothing
    trains and how to go on, and leaves the model directory as it is (here without weights:
    the line says how to link them)."""

    def finished_script(resume: bool) -> TrainingScript:
        return tiny_training(tmp_path, max_steps=-1, num_train_epochs=1,
                             resume_from_checkpoint=resume)  # fmt: skip

    monkeypatch.setenv("FORGATHER_RUN_TIME", "2030-01-01T00-00-00")
    assert finished_script(False).run().global_step == 2  # 16 rows, 8 a step
    (tmp_path / "model.safetensors").unlink()
    capsys.readouterr()
    assert finished_script(True).run().global_step == 2
    err = capsys.readouterr().err
    assert (
        "forgather: run tiny_2030-01-01T00-00-00 already reached step 2 = max_steps; nothing "
        "to train (raise num_train_epochs or set --max-steps to continue); "
        f"{tmp_path} has no weights: `forgather checkpoint link {tmp_path}` links them to "
        "checkpoint-2\n"
    ) in err
    assert not (tmp_path / "model.safetensors").exists()


def test_a_run_that_fails_before_its_first_step_leaves_no_run_directory(tmp_path):
    """A mistake found when the trainer starts (a scheduler name, here) must not leave a run
    that `--resume` and `plot` would list; a run that trained keeps its directory."""

    def script_with(scheduler: str) -> TrainingScript:
        return tiny_training(tmp_path, max_steps=2, lr_scheduler_type=scheduler)

    failing = script_with("cosin")
    with pytest.raises(ValueError, match="cosin"):
        failing.run()
    assert not failing.run_dir.exists() and not failing.run_dir.parent.exists()  # nor runs/
    trained = script_with("constant")
    trained.run()
    assert (trained.run_dir / "checkpoints").is_dir()
