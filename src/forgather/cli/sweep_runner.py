"""Run a sweep's trials: each one ``forgather ... train`` in a subprocess, N at a time.

    runner = TrialRunner(manifest, command_for, parallel=2, devices=["0", "1"])
    interrupted = runner.run(ListSource(pending_trials))

Each trial runs in its own directory (``<sweep_dir>/trial-NNN/``), appends
its output to ``train.log`` there, and is recorded in the manifest when it
starts and when it ends (exit code, wall time, the metrics of its
``trainer_logs.json``). Ctrl-C or SIGTERM stops starting trials, sends SIGTERM
to the running ones (the trainer saves and stops at the end of its step) and
waits for them; they are recorded as ``interrupted``. The next invocation
resumes an interrupted trial (or one a killed sweep left ``running``) from
its newest checkpoint (``train ... --resume``); a failed trial, or one with
no checkpoint, starts again from an empty directory.

Decision a reader may question: trials run in threads that only wait on
their subprocess, and every change to the manifest happens in the calling
thread, between waits; so the manifest needs no lock and is always written
whole. With ``parallel`` > 1 and no ``OMP_NUM_THREADS`` set, each trial gets
``cpu_count // parallel`` threads, so N trials on one machine share its cores
instead of each trying to use all of them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Protocol

from forgather.cli.errors import EXIT_USAGE
from forgather.cli.sweep_manifest import (
    FINISHED,
    Manifest,
    TrialRecord,
    find_log,
    logged_metrics,
    metric_summary,
    read_log,
    stopped_early,
)
from forgather.ml.checkpoint_layout import run_to_resume

LOG_NAME = "train.log"
KILL_AFTER_S = 60  # after SIGTERM, a trial gets this long to save and exit before SIGKILL


class TrialSource(Protocol):
    """Where the runner takes its next trial from (a fixed list, or a search like Optuna)."""

    def next(self) -> TrialRecord | None:
        """The next trial to run, or None when there is none now."""

    def finished(self, trial: TrialRecord) -> None:
        """Told when ``trial`` has ended (whatever its status)."""


class ListSource:
    """The trials of a grid or random sample, in order."""

    def __init__(self, trials: list[TrialRecord]):
        self._pending = list(trials)

    def next(self) -> TrialRecord | None:
        return self._pending.pop(0) if self._pending else None

    def finished(self, trial: TrialRecord) -> None:
        pass


class TrialRunner:
    """Runs trials and records them in the manifest.

    Args:
        manifest: the sweep's manifest (saved after every change).
        command_for: the command line of a trial, given it and its directory.
        parallel: how many trials run at once.
        devices: device ids handed out one per running trial (``CUDA_VISIBLE_DEVICES``).
        total: the number of trials, for ``[i/total]`` in progress lines.
        log: receives progress lines (default: stderr).
    """

    def __init__(self, manifest: Manifest, command_for: Callable[[TrialRecord, Path], list[str]],
                 parallel: int = 1, devices: list[str] | None = None, total: int | None = None,
                 log: Callable[[str], None] | None = None):  # fmt: skip
        self.manifest = manifest
        self.command_for = command_for
        self.parallel = max(1, parallel)
        self.free_devices = list(devices or [])
        self.total = total
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.started = 0
        self._procs: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._stopping = False
        #: why no further trial starts: the last one was a usage error, which every trial repeats
        self.abort: str | None = None
        self.env = dict(os.environ)
        if self.parallel > 1 and "OMP_NUM_THREADS" not in self.env:
            self.env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.parallel))

    def run(self, source: TrialSource) -> bool:
        """Run trials from ``source`` until it has none; returns whether it was interrupted."""
        running: dict[Future, tuple[TrialRecord, str | None]] = {}
        previous = _terminate_as_interrupt()
        try:
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                while True:
                    try:
                        while len(running) < self.parallel and not (self._stopping or self.abort):
                            trial = source.next()
                            if trial is None:
                                break
                            device = self.free_devices.pop(0) if self.free_devices else None
                            self._start(trial, device)
                            running[pool.submit(self._wait, trial, device)] = (trial, device)
                        if not running:
                            break
                        done, _ = wait(running, return_when=FIRST_COMPLETED)
                    except KeyboardInterrupt:
                        self._interrupt()
                        continue
                    for future in done:
                        trial, device = running.pop(future)
                        if device is not None:
                            self.free_devices.append(device)
                        self._finish(trial, *future.result())
                        source.finished(trial)
        finally:
            _restore(previous)
        return self._stopping

    # -- one trial -----------------------------------------------------------------

    def _start(self, trial: TrialRecord, device: str | None) -> None:
        trial_dir = self.manifest.trial_dir(trial)
        resume = trial.status in ("interrupted", "running") and _has_checkpoint(trial_dir)
        if trial_dir.exists() and not resume:  # a failed run, or one that saved nothing
            shutil.rmtree(trial_dir)
        trial_dir.mkdir(parents=True, exist_ok=True)
        self.started += 1
        trial.command = self.command_for(trial, trial_dir)
        if resume and "--resume" not in trial.command:
            trial.command.append("--resume")  # the train command's last option
        trial.status, trial.started, trial.finished = "running", time.time(), None
        trial.returncode = trial.wall_time_s = trial.run_dir = trial.error = None
        trial.metrics = {}
        self.manifest.save()
        values = "  ".join(trial.words[i + 1] for i in range(0, len(trial.words), 2))
        on = f"  (device {device})" if device is not None else ""
        self.log(f"{self._count()} {trial.name}  {values}{on}  -> {trial_dir / LOG_NAME}")

    def _wait(self, trial: TrialRecord, device: str | None) -> tuple[int, float]:
        """In a worker thread: run the trial's command; returns (exit code, seconds)."""
        env = dict(self.env)
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        trial_dir = self.manifest.trial_dir(trial)
        start = time.perf_counter()
        with open(trial_dir / LOG_NAME, "ab") as out:  # a resumed trial keeps its first part
            out.write(f"$ {shlex.join(trial.command)}\n".encode())
            out.flush()
            with self._lock:
                if self._stopping:
                    return -signal.SIGTERM, 0.0
                proc = subprocess.Popen(trial.command, stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env)  # fmt: skip
                self._procs[trial.id] = proc
            try:
                code = _wait_killing(proc, self)
            finally:
                with self._lock:
                    self._procs.pop(trial.id, None)
        return code, time.perf_counter() - start

    def _finish(self, trial: TrialRecord, code: int, seconds: float) -> None:
        trial.returncode, trial.wall_time_s, trial.finished = code, seconds, time.time()
        log_path = find_log(self.manifest.trial_dir(trial))
        entries = read_log(log_path) if log_path else []
        trial.run_dir = str(log_path.parent) if log_path else None
        trial.metrics = {name: metric_summary(entries, name) for name in logged_metrics(entries)}
        stopped = stopped_early(entries)
        if code == 0 and stopped is None and log_path is not None:
            trial.status = FINISHED
        elif code == 0 and log_path is None:
            trial.status = "failed"
            trial.error = (
                f"no {log_path or 'trainer_logs.json'} below {self.manifest.trial_dir(trial)}: "
                "does the config take the trial directory variable (--dir-var)?"
            )
        elif stopped is not None or self._stopping:
            trial.status = "interrupted"
            trial.error = f"stopped by {stopped}" if stopped else "interrupted"
        else:
            trial.status = "failed"
            trial.error = _last_error(self.manifest.trial_dir(trial) / LOG_NAME)
        self.manifest.save()
        self.log(f"{self._count(done=True)} {trial.name}  {trial.status} in {seconds:.1f}s"
                 + (f": {trial.error}" if trial.error else ""))  # fmt: skip
        if code == EXIT_USAGE:
            self.abort = f"{trial.name} was refused as a usage error (exit {code})"
            self.log(f"forgather: {self.abort}; every trial would be, so none other starts")
        if trial.status == "failed" and not self._stopping:
            tail = _tail(self.manifest.trial_dir(trial) / LOG_NAME, 12)
            if tail:
                self.log("    " + "\n    ".join(tail))

    def _count(self, done: bool = False) -> str:
        total = f"/{self.total}" if self.total else ""
        return f"[{self.started}{total}]" if not done else " " * len(f"[{self.started}{total}]")

    # -- stopping ---------------------------------------------------------------------

    def _interrupt(self) -> None:
        """Ctrl-C or SIGTERM: start nothing more; ask the running trials to stop."""
        first = not self._stopping
        with self._lock:
            self._stopping = True
            procs = list(self._procs.values())
        if first:
            self.log(
                f"forgather: stopping {len(procs)} running trial(s); rerun to continue the sweep"
            )
        for proc in procs:
            _signal(proc, signal.SIGTERM if first else signal.SIGKILL)


def _wait_killing(proc: subprocess.Popen, runner: TrialRunner) -> int:
    """Wait for ``proc``; once the runner stops, give it KILL_AFTER_S before SIGKILL."""
    deadline = None
    while True:
        try:
            return proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            if runner._stopping:
                deadline = deadline or time.monotonic() + KILL_AFTER_S
                if time.monotonic() > deadline:
                    _signal(proc, signal.SIGKILL)


def _signal(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it has just exited
        proc.send_signal(sig)


def _terminate_as_interrupt():
    """SIGTERM to the sweep acts like Ctrl-C (only possible in the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def _restore(previous) -> None:
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def _tail(path: Path, lines: int) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if line.strip()][-lines:]


def _last_error(path: Path) -> str:
    """The last line of a failed trial's output that looks like an error (else its last line)."""
    tail = _tail(path, 40)
    for line in reversed(tail):
        if "error" in line.lower() or "exception" in line.lower():
            return line.strip()[:300]
    return tail[-1].strip()[:300] if tail else "no output"


def _has_checkpoint(trial_dir: Path) -> bool:
    """Whether a run below ``trial_dir`` saved a complete checkpoint: what ``--resume`` takes."""
    return trial_dir.is_dir() and run_to_resume(str(trial_dir)) is not None
