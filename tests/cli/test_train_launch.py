"""``forgather train --nproc N``: the torchrun command it builds, where the job
listens, and what a signal to the launcher does to a real two-process job
(DDP over gloo on the CPU): the ranks checkpoint and stop, their exit code
becomes the launcher's, and no process of the job is left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forgather.cli.launch import child_pids

from .conftest import EXAMPLES, REPO_ROOT, run_cli

TUTORIAL = EXAMPLES / "tutorials" / "tiny_llama"
WAIT = 240.0  # seconds; a guard against a hung job, not a timing assertion

# The tutorial's run, data-parallel with AccelTrainer (the plain Trainer is one process's).
DDP_CONFIG = """\
-- extends "configs/train_tiny_llama.yaml"

[trainer_callback_entries]

[trainer_definition]
.define: &trainer !partial:forgather.ml.trainer:AccelTrainer@trainer
    model: *model
    train_dataset: *train_dataset
    eval_dataset: *eval_dataset
    data_collator: *data_collator
    processing_class: *tokenizer
    callbacks: *trainer_callbacks
    optimizer_factory: *optimizer
    lr_scheduler_factory: *lr_scheduler
    strategy: "ddp"
"""


def test_dry_run_of_one_machine_binds_the_store_to_loopback():
    result = run_cli("-p", str(TUTORIAL), "train", "--nproc", "2", "--dry-run")
    assert result.rc == 0, result.err
    assert (
        "-m forgather.cli.loopback_torchrun --rdzv-endpoint=127.0.0.1:0 --nproc-per-node=2"
        in result.out
    )
    assert "--standalone" not in result.out
    assert result.out.rstrip().endswith(f"-m forgather.cli -p {TUTORIAL} train")


def test_each_rank_gets_its_share_of_the_cores_unless_the_user_chose(monkeypatch):
    """torchrun sets OMP_NUM_THREADS=1 when it is unset, which the trainer then reads as
    the user's choice: the launcher sets each rank's share of the cores instead."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    result = run_cli("-p", str(TUTORIAL), "train", "--nproc", "2", "--dry-run")
    assert result.out.startswith(f"OMP_NUM_THREADS={share} "), result.out
    chosen = run_cli("-p", str(TUTORIAL), "train", "--nproc", "2", "--dry-run",
                     env={"OMP_NUM_THREADS": "3"})  # fmt: skip
    assert "OMP_NUM_THREADS" not in chosen.out  # the user's 3 reaches the ranks as it is


def test_shell_builds_the_rank_command_from_the_command_typed():
    session = "train --nproc 2 --dry-run --max-steps 3\nquit\n"
    result = run_cli("-p", str(TUTORIAL), "-D", "block_size=64", "-i", stdin=session)
    assert result.rc == 0, result.err
    (line,) = [line for line in result.out.splitlines() if "loopback_torchrun" in line]
    # The shell's own "-i" would make every rank open a shell.
    tail = f"-m forgather.cli -p {TUTORIAL} -D block_size=64 train --max-steps 3"
    assert line.endswith(tail), line


# -- a real job ---------------------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        children = child_pids(todo.pop())
        found.update(children)
        todo += children
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie counts as gone: it no longer runs, only waits to be reaped)."""
    try:
        import psutil
    except ImportError:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_for(probe, what: str):
    deadline = time.monotonic() + WAIT
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return value


class Job:
    """``forgather train --nproc 2`` on the shrunk tutorial, for a million steps."""

    def __init__(self, workdir: Path):
        config = workdir / "ddp.yaml"
        config.write_text(DDP_CONFIG)
        self.output_dir = workdir / "model"
        command = [
            sys.executable, "-m", "forgather.cli", "-p", str(TUTORIAL), "-t", str(config),
            "-D", f"output_dir={self.output_dir}", "-D", "stdlib_packages=[json, email]",
            "-D", "block_size=64", "-D", "tokenizer_vocab_size=512",
            "train", "--nproc", "2", "--max-steps", "1000000",
            "--set", "main.args.per_device_train_batch_size=2", "--set", "main.args.logging_steps=1",
            "--set", "main.args.eval_strategy=no", "--set", "main.args.save_steps=1000000",
            "--set", "main.args.bf16=false", "--set", "main.args.disable_tqdm=true",
        ]  # fmt: skip
        self.log = open(workdir / "output.txt", "w+")  # noqa: SIM115 - closed in close()
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
               "FORGATHER_RUN_TIME": "2026-01-01T00-00-00"}  # fmt: skip
        self.launcher = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,  # so that the test can clean up after a failure
        )  # fmt: skip
        self.seen: set[int] = set()

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def run_dir(self) -> Path:
        return self.output_dir / "runs" / "tiny_llama_2026-01-01T00-00-00"

    def steps_logged(self) -> int:
        if self.launcher.poll() is not None:
            raise AssertionError(f"the job exited early:\n{self.output()[-5000:]}")
        try:
            entries = json.loads((self.run_dir() / "trainer_logs.json").read_text())
        except (OSError, ValueError):
            return 0
        return max((e["step"] for e in entries if "loss" in e), default=0)

    def processes(self) -> set[int]:
        """The launcher's descendants now (torchrun, the ranks, their workers), remembered."""
        self.seen |= _descendants(self.launcher.pid)
        return self.seen

    def close(self) -> None:
        for pid in [self.launcher.pid, *self.processes()]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        self.launcher.wait(30)
        self.log.close()


@pytest.fixture
def job(tmp_path):
    running = Job(tmp_path)
    yield running
    running.close()


def _listening_addresses(pids: set[int]) -> list[str]:
    psutil = pytest.importorskip("psutil")
    found = []
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found += [c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN]
    return found


@pytest.mark.slow
def test_sigterm_to_the_launcher_checkpoints_and_leaves_no_process(job):
    _wait_for(lambda: job.steps_logged() >= 2, "two logged steps")
    processes = job.processes()
    assert len(processes) >= 3, processes  # torchrun and two ranks

    # The job's store (torchrun's) and the ranks' gloo listen on loopback only.
    listening = _listening_addresses(processes)
    assert listening and set(listening) <= {"127.0.0.1", "::1"}, listening

    job.launcher.send_signal(signal.SIGTERM)
    try:
        code = job.launcher.wait(WAIT)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the launcher did not exit:\n{job.output()[-5000:]}") from None
    output = job.output()
    assert code == 0, output[-5000:]  # the ranks stopped cleanly, and said so
    assert "the ranks will save a checkpoint and stop" in output

    checkpoints = sorted((job.run_dir() / "checkpoints").glob("checkpoint-*"))
    assert checkpoints, output[-5000:]
    assert (checkpoints[-1] / "trainer_state.json").is_file()
    step = int(checkpoints[-1].name.rsplit("-", 1)[1])
    assert 2 <= step < 1000000

    survivors = [pid for pid in processes if _alive(pid)]
    assert survivors == [], survivors
