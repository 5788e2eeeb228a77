"""Launching: two "nodes" on loopback through `forgather train -- <torchrun options>`,
and what a job does when one of its ranks is killed or signalled.

Tolerance of the two-node run against one process: 1e-5 relative per step
(gradients are summed in another order).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ENV, REPO_ROOT, WORKER, free_port, per_step, result, write_spec

TUTORIAL = REPO_ROOT / "examples" / "tutorials" / "tiny_llama"  # any project: the config is a file

CONFIG = """\
-- extends "accel_training_script.yaml"

[config_metadata]
    == super()
    -- set ns.model_name = "tiny"

[datasets_definition]
.define: &train_dataset !call:tests.ml.trainer.parallel.worker:packed_rows [64]
.define: &eval_dataset !call:tests.ml.trainer.parallel.worker:packed_rows [16, 64]
.define: &data_collator !call:forgather.ml.data:CausalLMCollator {pad_token_id: 0}

[model_definition]
.define: &model !call:forgather.ml.model:load_model [{{ model_source | toyaml }}]

[trainer_args]
.define: &trainer_args !call:forgather.ml.trainer:TrainingArguments@trainer_args
    output_dir: {{ ns.output_dir | toyaml }}
    per_device_train_batch_size: {{ batch }}
    learning_rate: 3.0e-3
    lr_scheduler_type: "constant"
    max_steps: 4
    logging_steps: 1
    save_steps: 2
    report_to: ["json"]
    disable_tqdm: true
    seed: 3
"""


def forgather_train(
    config: Path, model_dir: Path, output_dir: Path, batch: int, *torchrun_args: str
):
    """Start `forgather -t CONFIG train [-- TORCHRUN_OPTIONS]` (does not wait)."""
    command = [
        sys.executable, "-m", "forgather.cli", "-p", str(TUTORIAL), "-t", str(config),
        "-D", f"model_source={model_dir}", "-D", f"output_dir={output_dir}", "-D", f"batch={batch}",
        "train", *(["--", *torchrun_args] if torchrun_args else []),
    ]  # fmt: skip
    env = {**ENV, "FORGATHER_RUN_TIME": "2026-01-01T00-00-00"}  # every node names the same run
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def logged_losses(output_dir: Path) -> dict[int, float]:
    (run,) = (output_dir / "runs").iterdir()
    entries = json.loads((run / "trainer_logs.json").read_text())
    return {e["step"]: e["loss"] for e in entries if "loss" in e}


def finish(proc: subprocess.Popen, timeout: float = 180) -> str:
    output, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, output[-5000:]
    return output


@pytest.mark.slow
def test_two_nodes_on_loopback_match_one_process(tmp_path, model_dir):
    config = tmp_path / "two_nodes.yaml"
    config.write_text(CONFIG)
    single = forgather_train(config, model_dir, tmp_path / "one", 8)
    finish(single)
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [
        forgather_train(config, model_dir, tmp_path / "two", 4,
                        "--nnodes", "2", "--node-rank", str(rank), "--rdzv-endpoint", endpoint)
        for rank in (0, 1)
    ]  # fmt: skip
    for node in nodes:
        finish(node)
    one, two = logged_losses(tmp_path / "one"), logged_losses(tmp_path / "two")
    assert one.keys() == two.keys() == {1, 2, 3, 4}
    assert two == pytest.approx(one, rel=1e-5)
    environment = json.loads(
        next((tmp_path / "two" / "runs").iterdir()).joinpath("environment.json").read_text()
    )
    assert environment["world_size"] == 2


def start_job(out: Path, model_dir: Path, run: dict) -> subprocess.Popen:
    spec = write_spec(out, model_dir, [run])
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(WORKER), str(spec)]  # fmt: skip
    return subprocess.Popen(
        command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # so the test can clean up the whole job if it hangs
    )  # fmt: skip


def wait_for_step(job: subprocess.Popen, step: int, rank: int, lines: list[str]) -> int:
    """Read the job's output until rank `rank` reports step `step` or later; return its pid."""
    pattern = re.compile(rf"STEP (\d+) RANK {rank} PID (\d+)")
    for line in job.stdout:
        lines.append(line)
        match = pattern.search(line)
        if match and int(match.group(1)) >= step:
            return int(match.group(2))
    job.wait()
    raise AssertionError(f"the job ended before step {step}:\n" + "".join(lines[-50:]))


def collect(job: subprocess.Popen, lines: list[str], timeout: float) -> str:
    """The rest of the job's output; kills the job's process group if it outlives `timeout`."""
    try:
        rest, _ = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        job.communicate()
        pytest.fail(f"the job did not stop within {timeout} s")
    return "".join(lines) + rest


# Long enough to be interrupted (200 steps of >= 0.3 s), short enough not to stall the suite.
SLOW_RUN = {"name": "slow", "trainer": "accel", "batch": 4, "max_steps": 200, "step_delay": 0.3,
            "save_steps": 1000}  # fmt: skip


@pytest.mark.slow
def test_killing_one_rank_stops_the_job_with_a_clear_message(tmp_path, model_dir):
    job, lines = start_job(tmp_path, model_dir, SLOW_RUN), []
    victim = wait_for_step(job, 2, rank=1, lines=lines)
    os.kill(victim, signal.SIGKILL)
    output = collect(job, lines, timeout=120)  # fails the test if the job hangs instead
    assert job.returncode != 0
    assert f"Signal 9 (SIGKILL) received by PID {victim}" in output  # torchrun's report
    # The survivor's own error says what it means (MultiProcessTrainer's note).
    assert (
        "rank 0 of 2: a collective operation failed, most likely because another process" in output
    )


@pytest.mark.slow
def test_a_signal_on_one_rank_stops_every_rank_at_the_same_step(tmp_path, model_dir):
    job, lines = start_job(tmp_path, model_dir, SLOW_RUN), []
    victim = wait_for_step(job, 2, rank=1, lines=lines)
    os.kill(victim, signal.SIGTERM)  # only rank 1 sees it, as when a node's agent is told to stop
    output = collect(job, lines, timeout=120)
    assert job.returncode == 0, output[-5000:]
    stops = [result(tmp_path, "slow", rank)["log_history"][-1] for rank in (0, 1)]
    assert stops[0]["stopped_by"] == stops[1]["stopped_by"] == "SIGTERM"
    assert stops[0]["step"] == stops[1]["step"]
    step = stops[0]["step"]
    assert (
        tmp_path / "slow" / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json"
    ).is_file()
    assert max(per_step(tmp_path, "slow", "loss")) <= step < 200
