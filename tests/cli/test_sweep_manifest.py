"""``forgather.cli.sweep_manifest``: the sweep's record, trial identity, metrics from the JSON log."""

from __future__ import annotations

import json
import os

import pytest

from forgather.cli.errors import CLIError
from forgather.cli.sweep_manifest import (
    Manifest,
    find_log,
    load,
    logged_metrics,
    metric_summary,
    read_log,
    stopped_early,
)

BASE = {"project": "/p", "config": "c.yaml", "assignments": [], "train_args": ["--max-steps", "2"]}


def test_a_trial_is_known_by_its_assignments_in_any_order(tmp_path):
    manifest = Manifest.open(tmp_path / "sweep", BASE)
    first = manifest.trial_for({"a": 1, "b": 2}, ["-D", "a=1", "--set", "b=2"])
    assert (first.id, first.name, first.status) == (0, "trial-000", "pending")
    same = manifest.trial_for({"b": 2, "a": 1}, ["--set", "b=2", "-D", "a=1"])
    other = manifest.trial_for({"a": 1, "b": 2}, ["-D", "a=1", "-D", "b=2"])  # -D, not --set
    assert same is first and other.id == 1
    assert manifest.trial_dir(other) == tmp_path / "sweep" / "trial-001"


def test_saved_manifest_opens_again_with_its_trials(tmp_path):
    manifest = Manifest.open(tmp_path, BASE)
    trial = manifest.trial_for({"lr": 0.1}, ["-D", "lr=0.1"])
    trial.status, trial.metrics = "done", {"loss": {"last": 1.0, "step": 2, "best_min": 1.0,
                                                    "best_max": 3.0}}  # fmt: skip
    manifest.add_dimensions([{"name": "lr", "kind": "define", "spec": "0.1,0.2"}])
    manifest.save()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".sweep.")]  # no temporary left
    again = Manifest.open(tmp_path, BASE)
    assert again.trials == manifest.trials and again.dimensions == manifest.dimensions
    again.add_dimensions([{"name": "lr", "kind": "define", "spec": "0.1,0.2,0.3"},
                          {"name": "wd", "kind": "set", "spec": "0"}])  # fmt: skip
    assert [d["spec"] for d in again.dimensions] == ["0.1,0.2,0.3", "0"]
    assert load(tmp_path)["format"] == 1


def test_another_base_is_refused(tmp_path):
    Manifest.open(tmp_path, BASE).save()
    with pytest.raises(
        CLIError, match=r"holds another sweep \(train_args: \['--max-steps', '2'\] then"
    ):
        Manifest.open(tmp_path, {**BASE, "train_args": ["--max-steps", "3"]})


def test_not_a_sweep_directory(tmp_path):
    with pytest.raises(CLIError, match="not a sweep directory"):
        load(tmp_path)


def write_log(path, entries):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[\n" + ",\n".join(json.dumps(e) for e in entries) + "\n]\n")


def test_metric_summary_from_the_json_log(tmp_path):
    entries = [
        {"loss": 3.0, "learning_rate": 0.1, "step": 1, "epoch": 0.1},
        {"eval_loss": 2.5, "step": 1},
        {"loss": 2.0, "step": 2},
        {"eval_loss": 2.7, "step": 2},
        {"train_runtime": 1.5, "step": 2},
    ]
    write_log(tmp_path / "runs" / "r1" / "trainer_logs.json", entries)
    log = find_log(tmp_path)
    assert log == tmp_path / "runs" / "r1" / "trainer_logs.json"
    entries = read_log(log)
    assert metric_summary(entries, "eval_loss") == {"last": 2.7, "step": 2, "best_min": 2.5,
                                                    "best_max": 2.7}  # fmt: skip
    assert metric_summary(entries, "accuracy") is None
    assert logged_metrics(entries) == ["eval_loss", "learning_rate", "loss", "train_runtime"]
    assert stopped_early(entries) is None
    assert stopped_early([*entries, {"stopped_by": "SIGTERM", "step": 2}]) == "SIGTERM"


def test_find_log_takes_the_newest_run(tmp_path):
    write_log(tmp_path / "runs" / "old" / "trainer_logs.json", [{"loss": 1, "step": 1}])
    write_log(tmp_path / "runs" / "new" / "trainer_logs.json", [{"loss": 2, "step": 1}])
    os.utime(tmp_path / "runs" / "old" / "trainer_logs.json", (1, 1))
    assert find_log(tmp_path).parent.name == "new"
    assert find_log(tmp_path / "nothing") is None
    (tmp_path / "bad.json").write_text("[{")
    assert read_log(tmp_path / "bad.json") == []
