"""`forgather train` runs a config written in the original Forgather's idioms.

The project (`trainer_project/`) names the original's classes as its configs
do (`DistributedEnvironment`, `DataCollatorForCausalLM`, the callbacks,
`InfiniteLRScheduler` as a `!lambda`, `Trainer` with `compute_loss_func`,
`TrainingScript` as `main`) and trains a tiny model for a few steps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).parent / "trainer_project"


def forgather(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, "-m", "forgather.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def test_forgather_train_runs_a_config_in_the_originals_idioms(tmp_path):
    assert forgather("ws", "init", "--name", "compat", cwd=tmp_path).returncode == 0
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    result = forgather("train", cwd=project)

    assert result.returncode == 0, result.stderr
    model_dir = project / "output_models" / "tiny"
    assert sorted(os.listdir(model_dir / "checkpoints")) == ["checkpoint-4", "checkpoint-8"]
    assert (model_dir / "model.safetensors").is_file()  # do_save: True
    log = json.loads((model_dir / "runs" / "log" / "trainer_logs.json").read_text())
    losses = [e["loss"] for e in log if "loss" in e]
    assert [e["global_step"] for e in log if "loss" in e] == [2, 4, 6, 8]
    assert losses[-1] < losses[0]
    assert "step 8: loss" in result.stdout  # ProgressCallback's lines (stdout is no terminal)
