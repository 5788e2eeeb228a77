"""Real ``forgather train`` jobs for the control tests, and ways to watch them.

A job is the tiny_llama tutorial shrunk (a slice of the stdlib, blocks of 64
tokens, a 512-token vocabulary, batches of 2) with a step budget it never
reaches: every test ends its job itself, with a command or a signal. Its
output goes to files (a full pipe would stall training) and it runs in its
own process group so that a failed test can kill it and its torchrun ranks.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from forgather import control

REPO_ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = REPO_ROOT / "examples" / "tutorials" / "tiny_llama"
CONFIGS = Path(__file__).parent
WAIT = 120.0  # seconds; a guard against a hung job, not a timing assertion

T = TypeVar("T")


def wait_for(probe: Callable[[], T], what: str, timeout: float = WAIT) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_control(*args: str) -> subprocess.CompletedProcess:
    """``forgather control ARGS`` in a subprocess (the state dir comes from the environment)."""
    return subprocess.run(
        [sys.executable, "-m", "forgather.cli", "control", *args],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def accepted_step(reply: str) -> int:
    """The step in ``job ...: save accepted at step N; ...`` (what ``send`` prints)."""
    match = re.search(r"accepted at step (\d+)", reply)
    assert match, reply
    return int(match.group(1))


def applied(stderr: str, command: str) -> dict[int, int]:
    """rank -> step from the lines ``forgather control: CMD at step S (rank R of W)``."""
    pattern = rf"forgather control: {re.escape(command)} at step (\d+) \(rank (\d+) of \d+\)"
    return {int(rank): int(step) for step, rank in re.findall(pattern, stderr)}


class TrainingJob:
    """A ``forgather train`` subprocess (``nproc`` > 1: under torchrun, DDP).

    Args:
        workdir: holds the job's output dir and its captured output.
        nproc: processes; more than one uses AccelTrainer (see control_job_ddp.yaml).
        extra: more ``--set`` assignments for ``train``.
    """

    def __init__(self, workdir: Path, nproc: int = 1, extra: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.output_dir = workdir / "model"
        name = "control_job_ddp.yaml" if nproc > 1 else "control_job.yaml"
        config = workdir / name  # a copy: the run's record of its templates writes over a -t path
        shutil.copyfile(CONFIGS / name, config)
        command = [
            sys.executable, "-m", "forgather.cli", "-p", str(TUTORIAL), "-t", str(config),
            "-D", f"output_dir={self.output_dir}", "-D", "stdlib_packages=[json, email]",
            "-D", "block_size=64", "-D", "tokenizer_vocab_size=512",
            "train", "--max-steps", "1000000",
            "--set", "main.args.per_device_train_batch_size=2",
            "--set", "main.args.logging_steps=5",
            "--set", 'main.args.eval_strategy="no"', "--set", "main.args.save_steps=1000000",
            "--set", "main.args.bf16=false", "--set", "main.args.disable_tqdm=true",
            "--set", 'main.args.report_to=["json"]', *extra,
        ]  # fmt: skip
        if nproc > 1:
            command += ["--nproc", str(nproc)]
        self._stdout = open(workdir / "stdout.txt", "w")  # noqa: SIM115 - closed in finish()
        self._stderr = open(workdir / "stderr.txt", "w")  # noqa: SIM115
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=self._stdout, stderr=self._stderr,
            start_new_session=True,
        )  # fmt: skip
        self._record: control.JobRecord | None = None

    # -- finding it -------------------------------------------------------------
    def record(self) -> control.JobRecord:
        """The job's registry entry (waits for the job to register)."""
        if self._record is None:
            self._record = wait_for(self._find, f"the job in {self.output_dir} to register")
        return self._record

    def _find(self) -> control.JobRecord | None:
        if self.process.poll() is not None:
            raise AssertionError(f"the job exited with {self.process.returncode}:\n{self.stderr()}")
        for job in control.list_jobs():
            if job.run_dir.startswith(str(self.output_dir)):
                return job
        return None

    @property
    def job_id(self) -> str:
        return self.record().job_id

    def step(self) -> int:
        """The job's current step, asked over its control endpoint."""
        return int(control.status(self.record())["step"] or 0)

    def wait_for_step(self, step: int) -> int:
        """Wait until the job has done ``step`` steps; returns the step it reports."""
        return wait_for(lambda: (s := self.step()) >= step and s, f"step {step}")

    def checkpoints(self) -> list[int]:
        """Steps of the complete checkpoints in the run directory."""
        directory = Path(self.record().run_dir) / "checkpoints"
        if not directory.is_dir():
            return []
        names = (p.name for p in directory.iterdir() if p.name.startswith("checkpoint-"))
        return sorted(int(n.rsplit("-", 1)[1]) for n in names)

    # -- ending it --------------------------------------------------------------
    def wait(self, timeout: float = WAIT) -> int:
        """Wait for the job to exit; returns its exit status."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the job did not exit:\n{self.stderr()}") from None

    def kill9(self) -> None:
        """``kill -9`` the registered process (rank 0), as a crash would end it."""
        os.kill(self.record().pid, signal.SIGKILL)

    def finish(self) -> None:
        """Kill whatever is left of the job (its whole process group) and close its files."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)
        self._stdout.close()
        self._stderr.close()

    def stderr(self) -> str:
        """What the job (all its ranks, and torchrun) wrote to stderr so far."""
        return (self.workdir / "stderr.txt").read_text()
