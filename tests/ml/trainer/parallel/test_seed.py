"""`seed:` makes `forgather train` reproducible: initial weights, data order and dropout.

Each run is a real `forgather -t CONFIG train` in a new process (one process,
or two DDP ranks through torchrun) of a config that builds `tiny_lm.TinyLM`
afresh (random initial weights, dropout on) on shuffled data. A process that
does not seed starts from its own random generator state, so without the
seed applied before the model is built the runs differ from the first step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ENV, REPO_ROOT

TUTORIAL = REPO_ROOT / "examples" / "tutorials" / "tiny_llama"  # any project: the config is a file

CONFIG = """\
-- extends "TEMPLATE"

[config_metadata]
    == super()
    -- set ns.model_name = "tiny"

[datasets_definition]
.define: &train_dataset !call:tests.ml.trainer.tiny_lm:token_rows [64]
.define: &data_collator !partial:tests.ml.trainer.tiny_lm:collate

[model_definition]
.define: &model !call:tests.ml.trainer.tiny_lm:TinyLM

[trainer_args]
.define: &trainer_args !call:forgather.ml.trainer:TrainingArguments@trainer_args
    output_dir: {{ ns.output_dir | toyaml }}
    per_device_train_batch_size: 4
    learning_rate: 3.0e-3
    max_steps: 4
    logging_steps: 1
    save_strategy: "no"
    report_to: ["json"]
    disable_tqdm: true
    seed: {{ seed | default(3) }}
"""


def train(tmp_path: Path, template: str, run: str, *options: str) -> dict[int, float]:
    """Run `forgather -t CONFIG [OPTIONS] train ...`; return its per-step losses."""
    config = tmp_path / f"seeded_{Path(template).name}"  # not the name it extends
    config.write_text(CONFIG.replace("TEMPLATE", template))
    output_dir = tmp_path / run
    nproc = ["--nproc", "2"] if template.startswith("accel") else []
    command = [
        sys.executable, "-m", "forgather.cli", "-p", str(TUTORIAL), "-t", str(config),
        "-D", f"output_dir={output_dir}", *options, "train", *nproc,
    ]  # fmt: skip
    proc = subprocess.run(
        command, cwd=REPO_ROOT, env=ENV, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    (run_dir,) = (output_dir / "runs").iterdir()
    entries = json.loads((run_dir / "trainer_logs.json").read_text())
    return {e["step"]: e["loss"] for e in entries if "loss" in e}


@pytest.mark.slow
def test_two_runs_of_one_config_have_identical_losses(tmp_path):
    first = train(tmp_path, "training_script.yaml", "first")
    again = train(tmp_path, "training_script.yaml", "again")
    assert first.keys() == {1, 2, 3, 4}
    assert again == first  # identical floats, from the first step on
    other_seed = train(tmp_path, "training_script.yaml", "other", "-D", "seed=4")
    assert other_seed[1] != first[1]  # the seed, not luck, fixes them


@pytest.mark.slow
def test_two_ddp_runs_of_one_config_have_identical_losses(tmp_path):
    first = train(tmp_path, "accel_training_script.yaml", "first")
    again = train(tmp_path, "accel_training_script.yaml", "again")
    assert first.keys() == {1, 2, 3, 4}
    assert again == first
