"""``forgather sweep`` end to end: real ``forgather train`` trials of a tiny project in tmp_path.

The project's config extends ``training_script.yaml`` with a model of an
embedding and a linear head on random tokens (a file SPEC of the project's
own ``tiny.py``), so a trial of two steps takes a few seconds, most of them
importing torch.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap

import pytest

from forgather.cli import main
from tests.cli.conftest import Result, run_cli

MODEL = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self, dim: int = 8):
        super().__init__()
        self.embed, self.head = nn.Embedding(16, dim), nn.Linear(dim, 16)

    def forward(self, input_ids, labels=None, **_):
        logits = self.head(self.embed(input_ids))  # (B, T, 16)
        loss = nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 16), labels[:, 1:].reshape(-1))
        return {"loss": loss, "logits": logits}


def rows(n: int = 32):
    g = torch.Generator().manual_seed(0)
    return [{"input_ids": torch.randint(0, 16, (8,), generator=g)} for _ in range(n)]


def collate(samples):
    ids = torch.stack([s["input_ids"] for s in samples])
    return {"input_ids": ids, "labels": ids.clone()}
"""

CONFIG = """\
-- extends "training_script.yaml"
-- set tiny = joinpath(project_dir, "tiny.py")

[config_metadata]
    == super()
    -- set ns.model_name = "tiny"

[datasets_definition]
.define: &train_dataset !call:{{ tiny }}:rows []
.define: &eval_dataset !call:{{ tiny }}:rows [8]
.define: &data_collator !partial:{{ tiny }}:collate

[model_definition]
.define: &model !call:{{ tiny }}:Tiny
    dim: {{ dim | default(8) }}

[trainer_args]
.define: &trainer_args !call:forgather.ml.trainer:TrainingArguments@trainer_args
    output_dir: {{ ns.output_dir | toyaml }}
    per_device_train_batch_size: 4
    learning_rate: {{ lr | default(1.0e-2) }}
    max_steps: {{ max_steps | default(100) }}
    logging_steps: 1
    eval_strategy: "steps"
    eval_steps: 1
    save_strategy: "no"
    report_to: ["json"]
    disable_tqdm: true

[trainer_callbacks]
.define: &trainer_callbacks !dlist:@trainer_callbacks

[dynamic_args]
dynamic_args: !dlist
    max_steps:
        names: ["--max-steps"]
        type: int
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep_ws")
    assert run_cli("-p", str(root), "ws", "init", "--name", "sweeps").rc == 0
    project = root / "tiny"
    (project / "templates" / "configs").mkdir(parents=True)
    (project / "meta.yaml").write_text(textwrap.dedent("""\
        -- extends "meta_defaults.yaml"
        -- block configs
        name: "Tiny"
        default_config: "tiny.yaml"
        -- endblock configs
        """))  # fmt: skip
    (project / "tiny.py").write_text(MODEL)
    (project / "templates" / "configs" / "tiny.yaml").write_text(CONFIG)
    return project


def sweep(project, *args, sweep_dir: str = "sw"):
    """``forgather -p PROJECT sweep --sweep-dir PROJECT/sw ARGS``, given time for its trials."""
    command = [sys.executable, "-m", "forgather.cli", "-p", str(project), "sweep",
               "--sweep-dir", str(project / sweep_dir), *args]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100"}
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    return Result(proc.returncode, proc.stdout, proc.stderr)


def test_sweep_runs_resumes_and_reports(project):
    grid = ("--grid", "lr=1e-2,1e-1", "--set-grid", "main.args.per_device_train_batch_size=2")
    first = sweep(project, *grid, "--", "--max-steps", "2")
    assert first.rc == 0, first.out + first.err
    table = first.out.splitlines()
    assert table[0].startswith(f"sweep {project / 'sw'}: 2 of 2 trials finished; eval_loss (last")
    assert table[1].split() == ["trial", "status", "lr", "per_device_train_batch_size",
                                "eval_loss", "step", "time"]  # fmt: skip
    assert table[2].split()[:3] == ["trial-000", "done", "0.01"] and table[2].split()[-2] == "2"
    assert any(line.startswith("best: trial-00") for line in table)
    assert "[2/2] trial-001  lr=0.1  main.args.per_device_train_batch_size=2" in first.err

    manifest = json.loads((project / "sw" / "sweep.json").read_text())
    trial = manifest["trials"][0]
    assert trial["status"] == "done" and trial["values"] == {
        "lr": 0.01, "main.args.per_device_train_batch_size": 2}  # fmt: skip
    assert trial["command"][-4:] == [f"output_dir={project / 'sw' / 'trial-000'}", "train",
                                     "--max-steps", "2"]  # fmt: skip
    assert trial["run_dir"].startswith(str(project / "sw" / "trial-000" / "runs" / "tiny_"))
    with open(project / "sw" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["lr"] for r in rows] == ["0.01", "0.1"] and all(float(r["eval_loss"]) for r in rows)
    assert (project / "sw" / "sweep_eval_loss.png").read_bytes()[:4] == b"\x89PNG"

    again = sweep(project, *grid, "--", "--max-steps", "2")  # all finished: nothing runs
    assert again.rc == 0 and "2 trials, 2 finished before" in again.err
    assert "] trial-" not in again.err and again.out.splitlines()[2:4] == table[2:4]

    # A grid that grows a value keeps its finished trials (--dry-run: nothing runs or is written).
    grown = run_cli("-p", str(project), "sweep", "--sweep-dir", str(project / "sw"), "--grid",
                    "lr=1e-2,1e-1,3e-1", *grid[2:], "--dry-run", "--", "--max-steps", "2")  # fmt: skip
    assert [line for line in grown.out.splitlines() if line.startswith("#")] == [
        "# trial-000 (done)", "# trial-001 (done)", "# trial-002 (pending)"]  # fmt: skip

    # A killed sweep leaves its trial "running", with a partial directory: it runs again.
    manifest["trials"][1]["status"] = "running"
    (project / "sw" / "sweep.json").write_text(json.dumps(manifest))
    (project / "sw" / "trial-001" / "partial").write_text("")
    third = sweep(project, *grid, "--", "--max-steps", "2")
    assert third.rc == 0, third.out + third.err
    assert "2 trials, 1 finished before" in third.err
    assert "trial-000  lr=0.01" not in third.err and "[1/1] trial-001  lr=0.1" in third.err
    assert not (project / "sw" / "trial-001" / "partial").exists()

    report = run_cli("sweep", "--sweep-dir", str(project / "sw"), "--report", "--metric", "loss",
                     "--reduce", "best")  # fmt: skip
    assert report.rc == 0, report.err
    assert "2 of 2 trials finished; loss (best value" in report.out
    resumed = run_cli("sweep", "--sweep-dir", str(project / "sw"))  # as recorded: nothing to do
    assert resumed.rc == 0 and "2 trials, 2 finished before" in resumed.err
    typo = run_cli("sweep", "--sweep-dir", str(project / "sw"), "--report", "--metric", "los")
    assert typo.rc == 1 and "no trial logged 'los'; the trials logged: " in typo.err
    assert "eval_loss" in typo.err and "loss" in typo.err


def test_dry_run_prints_the_trials_and_writes_nothing(project):
    result = run_cli("-p", str(project), "-D", "dim=4", "sweep", "--grid", "lr=loguniform(1e-3,1e-1)",
                     "--random", "2", "--seed", "3", "--dry-run", "--", "--max-steps", "1")  # fmt: skip
    assert result.rc == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "# trial-000 (pending)" and lines[2] == "# trial-001 (pending)"
    assert " -D dim=4 -D lr=0.0" in lines[1] and lines[1].endswith("train --max-steps 1")
    assert "output_models/sweeps/tiny-" in lines[1]
    assert not (project / "output_models").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to sweep: give --grid"),
        (["--grid", "lr=uniform(0,1)"], "is a range to sample from: add --random N"),
        (["--grid", "lr=1,2", "--grid", "lr=3"], "swept twice: lr"),
        (["-D", "lr=1", "--grid", "lr=1,2"], "lr is both swept"),
        (["--grid", "output_dir=a,b"], "output_dir receives each trial's directory"),
        (["--grid", "lr=1,2", "--random", "0"], "--random expects a positive number"),
        (["--grid", "lr=1,2", "--parallel", "3", "--devices", "0,1"], "needs as many devices"),
        (["--sweep-dir", "nowhere"], "nowhere is not a sweep directory"),
    ],
)
def test_mistakes(project, args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["-p", str(project), "sweep", *args]) == 1
    assert message in capsys.readouterr().err


def test_optuna_missing_is_a_clear_error(project):
    try:
        import optuna  # noqa: F401
    except ImportError:
        result = run_cli("-p", str(project), "sweep", "--grid", "lr=loguniform(1e-3,1e-1)",
                         "--optuna", "2")  # fmt: skip
        assert result.rc == 1 and "pip install optuna" in result.err
        return
    pytest.skip("Optuna is installed: test_optuna_search covers --optuna")


def test_optuna_search(project):
    pytest.importorskip("optuna", reason="Optuna is not installed (pip install optuna)")
    args = ("--grid", "lr=loguniform(1e-3,3e-1)", "--optuna", "2", "--sweep-dir",
            str(project / "opt"), "--", "--max-steps", "1")  # fmt: skip
    result = run_cli("-p", str(project), "sweep", *args)
    assert result.rc == 0, result.out + result.err
    assert "2 of 2 trials finished" in result.out
    more = run_cli("-p", str(project), "sweep", *[a if a != "2" else "3" for a in args])
    assert more.rc == 0 and "3 of 3 trials finished" in more.out
    assert more.err.count("] trial-") == 1  # only the new one ran


def test_a_misspelt_set_grid_path_stops_the_sweep_before_any_trial(project):
    result = sweep(project, "--set-grid", "main.args.per_device_train_batchsize=2,4",
                   "--", "--max-steps", "2", sweep_dir="sw_typo")  # fmt: skip
    assert result.rc == 2, result.out + result.err
    assert "break the config, which passes `forgather check` without them; no trial" in result.err
    assert "unexpected keyword argument 'per_device_train_batchsize'" in result.err
    assert not (project / "sw_typo" / "trial-000").exists()


def test_a_train_option_every_trial_refuses_ends_the_sweep_as_a_usage_error(project):
    """Not "run the same command again to retry them", which would only repeat it."""
    result = sweep(project, "--grid", "lr=1e-2,1e-1", "--", "--max-stepz", "2",
                   sweep_dir="sw_usage")  # fmt: skip
    assert result.rc == 2, result.out + result.err
    assert "trial-000 was refused as a usage error (exit 2)" in result.err
    assert "fix the train options (after --) and run again" in result.err
    assert "run the same command again" not in result.err
    assert not (project / "sw_usage" / "trial-001").exists()
