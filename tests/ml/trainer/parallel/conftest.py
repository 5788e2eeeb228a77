"""Fixtures for the multi-process trainer tests: a tiny generated model, and launching ranks.

Every distributed run is a real `torchrun` job of `worker.py` on the CPU
(gloo); the single-process references run in this process through the same
`worker.train_run`, with one thread as in the workers so that float sums are
taken in the same order.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from forgather.config import ConfigEnvironment
from forgather.project.workspace import templatelib_searchdirs

from . import worker

WORKER = Path(worker.__file__)
REPO_ROOT = Path(__file__).resolve().parents[4]
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",  # two cores shared by every rank
    "PYTHONUNBUFFERED": "1",
    "PYTHONPATH": str(REPO_ROOT),  # so configs can name tests.ml.trainer.parallel.worker
}

#: A Llama-style model small enough to train a step in milliseconds; 4 layers so
#: that a 2-rank pipeline can also run 2 stages per rank.
TINY = {
    "vocab_size": 128,  # ASCII bytes
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "num_hidden_layers": 4,
    "max_position_embeddings": 64,
}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A generated tiny Llama with its initial weights saved, shared by every run."""
    out = tmp_path_factory.mktemp("models") / "tiny_llama"
    cfg = ConfigEnvironment(templatelib_searchdirs()).load("llama_4m.yaml", output_dir=str(out))
    for key, value in TINY.items():
        cfg.set_value(f"model.hyperparameters.{key}", value)
    torch.manual_seed(0)
    cfg.build("model").save_pretrained(out)
    return out


def write_spec(out: Path, model_dir: Path, runs: list[dict]) -> Path:
    """The JSON spec `worker.py` reads."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "spec.json"
    path.write_text(json.dumps({"model_dir": str(model_dir), "out": str(out), "runs": runs}))
    return path


def torchrun(nproc: int, spec: Path, *run_names: str, timeout: float = 240) -> None:
    """Run `worker.py` on `nproc` ranks; fail with the job's output if it fails."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc-per-node={nproc}", str(WORKER), str(spec), *run_names,
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=timeout)
    (spec.parent / "torchrun.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        pytest.fail(
            f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        )


def in_process(spec: Path, *run_names: str) -> None:
    """Run `worker.py`'s runs in this process (single-process references)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = json.loads(spec.read_text())
        for run in data["runs"]:
            if run["name"] in run_names:
                worker.train_run(data, run)
    finally:
        torch.set_num_threads(threads)


def result(out: Path, name: str, rank: int = 0) -> dict:
    """What rank `rank` recorded for run `name`."""
    return json.loads((out / f"{name}-rank{rank}.json").read_text())


def per_step(out: Path, name: str, key: str, rank: int = 0) -> dict[int, float]:
    """{step: value} of a logged quantity ("loss", "grad_norm") of one run."""
    return {e["step"]: e[key] for e in result(out, name, rank)["log_history"] if key in e}


def weights(out: Path, name: str) -> dict[str, torch.Tensor]:
    """The full final weights of run `name` (gathered or merged by rank 0)."""
    return torch.load(out / f"{name}-weights.pt", weights_only=True)


def max_weight_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
