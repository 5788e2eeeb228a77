"""Job control on a CPU run: how fast `save` and `stop` act, and what the callback costs.

Runs the tiny_llama tutorial shrunk (a slice of the stdlib, blocks of 64
tokens, a 512-token vocabulary, batches of 2, no evaluation) as real
`forgather train` processes and prints, as medians over `--repeats` rounds:

- save -> checkpoint on disk: seconds from `forgather.control.send(job, "save")`
  until the new `checkpoint-N` directory exists (and how many steps later N is
  than the step the reply reported);
- stop -> process exit: seconds from `send(job, "stop")` until the
  `forgather train` process has exited (final checkpoint, final model, exit);
- step time with the callback on and off: median step time of whole runs
  (`--steps` steps each, on and off interleaved), and the callback's own cost
  per step measured in this process (`on_step_end` calls, no training).

    .venv/bin/python benchmarks/control_latency.py                # one process
    .venv/bin/python benchmarks/control_latency.py --nproc 2      # 2 ranks, DDP (AccelTrainer)
    .venv/bin/python benchmarks/control_latency.py --repeats 5 --steps 300

The decision a reader may question: the on/off comparison of whole runs is
printed, but on a shared CPU its noise (a few percent) is far above the
callback's cost, so the in-process figure is the one that measures the
overhead; the whole-run figure shows it is lost in that noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = REPO_ROOT / "examples" / "tutorials" / "tiny_llama"

# The tutorial without its text-sample callbacks; `-D no_control=true` removes
# the control callback; with `-D ddp=true` the trainer is AccelTrainer (DDP).
CONFIG = """\
-- extends "configs/train_tiny_llama.yaml"

[trainer_callback_entries]
-- if no_control | default(false)
    control: ~
-- endif

[trainer_definition]
-- if ddp | default(false)
.define: &trainer !partial:forgather.ml.trainer:AccelTrainer@trainer
-- else
.define: &trainer !partial:forgather.ml.trainer:Trainer@trainer
-- endif
    model: *model
    train_dataset: *train_dataset
    eval_dataset: *eval_dataset
    data_collator: *data_collator
    processing_class: *tokenizer
    callbacks: *trainer_callbacks
    optimizer_factory: *optimizer
    lr_scheduler_factory: *lr_scheduler
"""


def start_job(workdir: Path, name: str, steps: int, nproc: int, control: bool) -> subprocess.Popen:
    """`forgather train` of the shrunk tutorial into `workdir/name` (output to files there)."""
    out = workdir / name
    out.mkdir()
    command = [
        sys.executable, "-m", "forgather.cli", "-p", str(TUTORIAL), "-t", str(workdir / "job.yaml"),
        "-D", f"output_dir={out / 'model'}", "-D", "stdlib_packages=[json, email]",
        "-D", "block_size=64", "-D", "tokenizer_vocab_size=512",
        "-D", f"no_control={str(not control).lower()}", "-D", f"ddp={str(nproc > 1).lower()}",
        "train", "--max-steps", str(steps), "--nproc", str(nproc),
        "--set", "main.args.per_device_train_batch_size=2", "--set", "main.args.logging_steps=10",
        "--set", 'main.args.eval_strategy="no"', "--set", "main.args.save_steps=100000000",
        "--set", "main.args.bf16=false", "--set", "main.args.disable_tqdm=true",
        "--set", 'main.args.report_to=["json"]',
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(out / "stderr.txt", "w") as err, open(out / "stdout.txt", "w") as stdout:
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=stdout, stderr=err)


def run_dir(workdir: Path, name: str) -> Path:
    (run,) = (workdir / name / "model" / "runs").iterdir()
    return run


def median_step_time(run: Path) -> float:
    """Median seconds per step over the logged windows, the first one (warm-up) left out.

    Each window logs its tokens/s (save and evaluation time excluded) and the
    tokens seen so far, so its step time is tokens / (tokens/s) / steps.
    """
    logs = [e for e in json.loads((run / "trainer_logs.json").read_text()) if "loss" in e]
    times = []
    for before, entry in zip(logs, logs[1:], strict=False):
        tokens = entry["num_input_tokens_seen"] - before["num_input_tokens_seen"]
        times.append(tokens / entry["tokens_per_second"] / (entry["step"] - before["step"]))
    return statistics.median(times)


def checkpoint_steps(run: Path) -> set[int]:
    directory = run / "checkpoints"
    if not directory.is_dir():
        return set()
    return {int(p.name.rsplit("-", 1)[1]) for p in directory.glob("checkpoint-*")}


def wait_until(probe, timeout: float = 300.0, poll: float = 0.002):
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError("the job did not get there in time")
        time.sleep(poll)
    return value


def control_round(workdir: Path, name: str, nproc: int, saves: int) -> tuple[list, float]:
    """Start a job, time `saves` saves and one stop; returns ([(seconds, steps)], stop seconds)."""
    from forgather import control

    process = start_job(workdir, name, 10**8, nproc, control=True)
    out = str(workdir / name)
    job = wait_until(
        lambda: next((j for j in control.list_jobs() if j.run_dir.startswith(out)), None)
    )
    wait_until(lambda: (control.status(job).get("step") or 0) >= 5, poll=0.05)
    run = Path(job.run_dir)
    latencies = []
    for _ in range(saves):
        before = max(checkpoint_steps(run), default=0)
        start = time.perf_counter()
        reply = control.send(job, "save")
        saved = wait_until(
            lambda b=before: max(checkpoint_steps(run), default=0) > b and checkpoint_steps(run)
        )
        latencies.append((time.perf_counter() - start, max(saved) - reply["step"]))
        step = control.status(job)["step"]
        wait_until(
            lambda s=step: control.status(job)["step"] >= s + 3, poll=0.02
        )  # a few plain steps
    start = time.perf_counter()
    control.send(job, "stop")
    code = process.wait(300)
    stop_seconds = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"{name} exited with {code}: see {workdir / name / 'stderr.txt'}")
    return latencies, stop_seconds


def timed_run(workdir: Path, name: str, nproc: int, steps: int, control: bool) -> float:
    """Median step time of a job that runs `steps` steps untouched."""
    process = start_job(workdir, name, steps, nproc, control=control)
    if process.wait(1800) != 0:
        raise RuntimeError(f"{name} failed: see {workdir / name / 'stderr.txt'}")
    return median_step_time(run_dir(workdir, name))


def _callback_cost_on_rank(rank: int, world: int, port: int, calls: int, out: str) -> None:
    """One rank of `callback_cost`: times `on_step_end` of both callbacks; rank 0 writes `out`."""
    import torch.distributed as dist

    from forgather.ml.trainer import (
        TrainerCallback,
        TrainerControl,
        TrainerState,
        TrainingArguments,
    )
    from forgather.ml.trainer.callbacks import TrainerControlCallback

    if world > 1:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
        )
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, report_to=[], disable_tqdm=True)
        results = []
        for callback in (TrainerControlCallback("bench"), TrainerCallback()):
            state, flow = TrainerState(max_steps=10**9), TrainerControl()
            callback.on_train_begin(args, state, flow)  # the control callback registers and serves
            if world > 1:
                dist.barrier()
            start = time.perf_counter()
            for _ in range(calls):
                state.global_step += 1
                callback.on_step_end(args, state, flow)
            results.append((time.perf_counter() - start) / calls * 1e6)
            callback.on_train_end(args, state, flow)
    if rank == 0:
        Path(out).write_text(json.dumps(results))
    if world > 1:
        dist.destroy_process_group()


def callback_cost(world: int, calls: int = 5000) -> tuple[float, float]:
    """Microseconds per `on_step_end` on rank 0 of `world` processes (gloo).

    Returns:
        (TrainerControlCallback, a callback that does nothing); with several
        processes the first includes the broadcast of the command code.
    """
    import socket

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as tmp, socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        out = os.path.join(tmp, "cost.json")
        if world == 1:
            _callback_cost_on_rank(0, 1, port, calls, out)
        else:
            mp.spawn(_callback_cost_on_rank, (world, port, calls, out), nprocs=world)
        control_us, baseline_us = json.loads(Path(out).read_text())
    return control_us, baseline_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nproc", type=int, default=1, help="processes per job (>1: DDP)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (each starts 3 jobs)")
    parser.add_argument("--saves", type=int, default=3, help="saves timed per round")
    parser.add_argument("--steps", type=int, default=200, help="steps of each on/off run")
    parser.add_argument("--keep", action="store_true", help="keep the jobs' directories")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="control_latency_"))
    (workdir / "job.yaml").write_text(CONFIG)
    os.environ["FORGATHER_STATE_DIR"] = str(workdir / "state")
    os.environ.setdefault("FORGATHER_CACHE_DIR", str(workdir / "cache"))
    print(f"# {args.nproc} process(es), {os.cpu_count()} CPUs; jobs in {workdir}")
    try:
        measure(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def measure(args: argparse.Namespace, workdir: Path) -> None:
    """Run the rounds and print the figures (see the module docstring)."""

    saves, stops, on, off = [], [], [], []
    for r in range(args.repeats):
        latencies, stop = control_round(workdir, f"control{r}", args.nproc, args.saves)
        saves += latencies
        stops.append(stop)
        for enabled in (False, True) if r % 2 == 0 else (True, False):  # alternate the order
            seconds = timed_run(
                workdir, f"{'on' if enabled else 'off'}{r}", args.nproc, args.steps, enabled
            )
            (on if enabled else off).append(seconds)
        timed = ", ".join(f"{s:.3f}s (+{n})" for s, n in latencies)
        steps = f"step off {off[-1] * 1e3:.1f} ms, on {on[-1] * 1e3:.1f} ms"
        print(f"round {r}: save {timed}; stop {stop:.2f}s; {steps}")

    from forgather import control

    registered = {Path(j.run_dir).parts[-4] for j in control.list_jobs()}
    assert not any(name.startswith("off") for name in registered), "an 'off' run registered itself"

    step_off, step_on = statistics.median(off), statistics.median(on)
    per_call, baseline = callback_cost(args.nproc)
    print()
    print(f"save -> checkpoint on disk   median {statistics.median(s for s, _ in saves):.3f} s "
          f"over {len(saves)} saves (checkpoint at reply step +{min(n for _, n in saves)}.."
          f"+{max(n for _, n in saves)}); median step {step_on:.3f} s")  # fmt: skip
    stop_median = statistics.median(stops)
    print(f"stop -> process exit         median {stop_median:.2f} s over {len(stops)} stops")
    print(f"step time, callback off/on   {step_off * 1e3:.1f} ms / {step_on * 1e3:.1f} ms "
          f"(on/off {step_on / step_off:.3f}; run-to-run noise included)")  # fmt: skip
    print(
        f"callback cost per step       {per_call - baseline:.1f} us in process "
        f"on rank 0 of {args.nproc} ({(per_call - baseline) / (step_off * 1e6):.4%} of a step"
        f"{'; includes the int64 broadcast' if args.nproc > 1 else ''})"
    )


if __name__ == "__main__":
    main()
