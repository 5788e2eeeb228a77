"""``forgather.cli.sweep_runner`` and ``sweep_report`` on real subprocesses that stand in for training.

Each trial runs a few lines of Python (not ``forgather train``, which the
command test runs) that write a ``trainer_logs.json`` the way the trainer does
and exit as the trial's values say; so every status, the device hand-out and
the report are checked in about a second.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import threading
import time

import pytest

from forgather.cli.sweep_manifest import Manifest
from forgather.cli.sweep_report import (
    format_table,
    plot_metric,
    short_names,
    summary_rows,
    write_csv,
)
from forgather.cli.sweep_runner import ListSource, TrialRunner

TRIAL = """
import json, os, sys
trial_dir, values = sys.argv[1], json.loads(sys.argv[2])
with open(os.path.join(trial_dir, "env.json"), "w") as f:
    json.dump({k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")}, f)
if values.get("log", True):
    run = os.path.join(trial_dir, "runs", "tiny_2026")
    os.makedirs(run)
    entries = [{"loss": 4.0, "step": 1}, {"loss": values["lr"] * 10, "step": 2},
               {"eval_loss": values["lr"] * 20, "step": 2}]
    if values.get("stopped"):
        entries.append({"train_runtime": 1.0, "stopped_by": "SIGTERM", "step": 2})
    with open(os.path.join(run, "trainer_logs.json"), "w") as f:
        json.dump(entries, f)
print("training...")
if values.get("sleep"):
    open(os.path.join(trial_dir, "started"), "w").close()
    import time; time.sleep(values["sleep"])
if values.get("exit"):
    print("ValueError: lr too high", file=sys.stderr)
sys.exit(values.get("exit", 0))
"""


def command_for(trial, trial_dir):
    return [sys.executable, "-c", TRIAL, str(trial_dir), json.dumps(trial.values)]


def run(tmp_path, values_list, parallel=1, devices=None):
    manifest = Manifest.open(tmp_path / "sweep", {"config": "c.yaml"})
    trials = [manifest.trial_for(v, [w for k, x in v.items() for w in ("-D", f"{k}={x}")])
              for v in values_list]  # fmt: skip
    lines = []
    runner = TrialRunner(manifest, command_for, parallel, devices, len(trials), lines.append)
    interrupted = runner.run(ListSource(trials))
    return manifest, trials, lines, interrupted


def test_statuses_metrics_and_logs(tmp_path):
    manifest, trials, lines, interrupted = run(tmp_path, [
        {"lr": 0.1}, {"lr": 0.2, "exit": 1}, {"lr": 0.3, "stopped": True}, {"lr": 0.4, "log": False},
    ])  # fmt: skip
    assert not interrupted
    assert [t.status for t in trials] == ["done", "failed", "interrupted", "failed"]
    done = trials[0]
    assert done.returncode == 0 and done.wall_time_s > 0 and done.run_dir.endswith("tiny_2026")
    assert done.metrics["eval_loss"] == {"last": 2.0, "step": 2, "best_min": 2.0, "best_max": 2.0}
    assert done.metrics["loss"]["best_max"] == 4.0
    assert trials[1].error == "ValueError: lr too high" and trials[1].returncode == 1
    assert trials[2].error == "stopped by SIGTERM"
    assert "does the config take the trial directory variable (--dir-var)?" in trials[3].error
    log = (tmp_path / "sweep" / "trial-001" / "train.log").read_text()
    assert log.startswith("$ ") and "training..." in log  # the command, then its output
    assert any("ValueError: lr too high" in line for line in lines)  # the failing tail is shown
    recorded = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["trials"]
    assert [t["status"] for t in recorded] == ["done", "failed", "interrupted", "failed"]


def test_a_usage_error_stops_the_sweep(tmp_path):
    _, trials, lines, _ = run(tmp_path, [{"lr": 0.1, "exit": 2}, {"lr": 0.2}])
    assert [t.status for t in trials] == ["failed", "pending"]
    assert any("every trial would be" in line for line in lines)


def test_parallel_trials_get_a_device_each_and_share_the_cores(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    _, trials, _, _ = run(tmp_path, [{"lr": 0.1}, {"lr": 0.2}, {"lr": 0.3}], parallel=2,
                          devices=["0", "1"])  # fmt: skip
    assert all(t.status == "done" for t in trials)
    envs = [json.loads((tmp_path / "sweep" / t.name / "env.json").read_text()) for t in trials]
    assert {e["CUDA_VISIBLE_DEVICES"] for e in envs} == {"0", "1"}
    assert all(int(e["OMP_NUM_THREADS"]) >= 1 for e in envs)


def test_an_unfinished_trial_starts_again_from_nothing(tmp_path):
    stale = tmp_path / "sweep" / "trial-000" / "runs" / "old_run"
    stale.mkdir(parents=True)
    (stale / "trainer_logs.json").write_text('[{"loss": 0.0, "step": 9}]')
    _, (trial,), _, _ = run(tmp_path, [{"lr": 0.1}])
    assert not stale.exists() and trial.metrics["loss"]["last"] == 1.0


@pytest.fixture
def finished(tmp_path):
    manifest, trials, _, _ = run(tmp_path, [
        {"lr": 0.01, "act": "relu"}, {"lr": 0.1, "act": "relu"}, {"lr": 0.01, "act": "gelu"},
        {"lr": 0.3, "act": "gelu", "exit": 1},
    ])  # fmt: skip
    return manifest, trials


def test_summary_table_marks_the_best_finished_trial(finished):
    _, trials = finished
    rows = summary_rows(trials, "eval_loss", "min", "last")
    assert [r.score for r in rows][:3] == [0.2, 2.0, 0.2] and rows[3].score == 6.0
    assert [r.is_best for r in rows] == [True, False, False, False]  # failed trials never win
    assert [r.is_best for r in summary_rows(trials, "eval_loss", "max", "last")][1]
    assert [r.score for r in summary_rows(trials, "loss", "max", "best")][:3] == [4.0, 4.0, 4.0]
    table = format_table(rows, ["lr", "act"], "eval_loss").splitlines()
    assert table[0].split() == ["trial", "status", "lr", "act", "eval_loss", "step", "time"]
    assert table[1].split()[:6] == ["trial-000", "done", "*", "0.01", "relu", "0.2"]
    assert table[4].split()[:5] == ["trial-003", "failed", "0.3", "gelu", "6"]


def test_csv_and_plot(finished, tmp_path):
    manifest, trials = finished
    rows = summary_rows(trials, "eval_loss", "min", "last")
    write_csv(rows, ["lr", "act"], "eval_loss", tmp_path / "summary.csv")
    with open(tmp_path / "summary.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["trial"] for r in table] == ["trial-000", "trial-001", "trial-002", "trial-003"]
    assert table[1]["lr"] == "0.1" and table[1]["eval_loss"] == "2.0" and table[0]["best"] == "*"
    assert table[3]["status"] == "failed" and table[3]["returncode"] == "1"
    dims = [{"name": "lr", "log": True}, {"name": "act", "log": False}]
    assert plot_metric(rows, dims, "eval_loss", "min", tmp_path / "plot.png") is None
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    nothing = summary_rows(trials, "accuracy", "max", "last")
    assert plot_metric(nothing, dims, "accuracy", "max", tmp_path / "no.png") == (
        "no finished trial logged accuracy"
    )


def test_short_column_names():
    assert short_names(["main.args.learning_rate", "main.args.weight_decay", "lr"]) == [
        "learning_rate", "weight_decay", "lr"]  # fmt: skip
    assert short_names(["main.args.lr", "model.lr", "lr"]) == ["args.lr", "model.lr", "lr"]


def test_sigterm_stops_the_sweep_and_its_running_trial(tmp_path):
    started = tmp_path / "sweep" / "trial-000" / "started"
    before = signal.getsignal(signal.SIGTERM)

    def terminate_once_running():
        deadline = time.monotonic() + 120
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)  # the runner's handler turns it into Ctrl-C

    threading.Thread(target=terminate_once_running, daemon=True).start()
    _, trials, lines, interrupted = run(tmp_path, [{"lr": 0.1, "sleep": 60}, {"lr": 0.2}])
    assert interrupted and [t.status for t in trials] == ["interrupted", "pending"]
    assert trials[0].returncode == -signal.SIGTERM  # the trial got SIGTERM too
    assert any("stopping 1 running trial(s)" in line for line in lines)
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back


RESUMABLE = """
import json, os, sys
trial_dir, values, resume = sys.argv[1], json.loads(sys.argv[2]), "--resume" in sys.argv
checkpoint = os.path.join(trial_dir, "runs", "r", "checkpoints", "checkpoint-2")
print("resuming" if resume else "starting", os.path.isdir(checkpoint))
if not resume:  # a complete checkpoint: the trainer's state written last
    os.makedirs(checkpoint)
    open(os.path.join(checkpoint, "trainer_state.json"), "w").write("{}")
log = os.path.join(trial_dir, "runs", "r", "trainer_logs.json")
entries = json.load(open(log)) if resume else [{"loss": 4.0, "step": 2}]
if resume or values.get("exit"):
    entries += [{"loss": 3.0, "step": 4}, {"train_runtime": 2.0, "step": 4}]
else:  # what a SIGTERM'd trainer leaves: a checkpoint and a stopped run
    entries.append({"train_runtime": 1.0, "stopped_by": "SIGTERM", "step": 2})
json.dump(entries, open(log, "w"))
sys.exit(values.get("exit", 0))
"""


def test_an_interrupted_trial_resumes_from_its_checkpoint_and_a_failed_one_starts_over(tmp_path):
    """Rerunning a sweep used to delete the checkpoint an interrupted trial had just saved."""

    def command(trial, trial_dir):
        return [sys.executable, "-c", RESUMABLE, str(trial_dir), json.dumps(trial.values)]

    def sweep(values_list):
        manifest = Manifest.open(tmp_path / "sweep", {"config": "c.yaml"})
        trials = [manifest.trial_for(v, ["-D", f"lr={v['lr']}"]) for v in values_list]
        TrialRunner(manifest, command, 1, None, len(trials), lambda line: None).run(
            ListSource([t for t in trials if t.status != "done"])
        )
        return manifest, trials

    def said(log):
        return [
            line for line in log.read_text().splitlines() if line.startswith(("start", "resum"))
        ]

    manifest, trials = sweep([{"lr": 0.1}, {"lr": 0.2, "exit": 1}])
    assert [t.status for t in trials] == ["interrupted", "failed"]
    manifest, trials = sweep([{"lr": 0.1}, {"lr": 0.2, "exit": 1}])
    resumed, failed = (manifest.trial_dir(t) / "train.log" for t in trials)
    assert trials[0].status == "done" and trials[0].command[-1] == "--resume"
    assert trials[0].metrics["loss"]["last"] == 3.0
    assert said(resumed) == ["starting False", "resuming True"]  # one log, both parts
    assert "--resume" not in trials[1].command  # a failure is not continued
    assert said(failed) == ["starting False"]
