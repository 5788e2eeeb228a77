"""Training throughput and peak memory: Forgather's Trainer next to its peers, in one run.

The peers: Hugging Face's `transformers.Trainer` (`transformers`), the same
Trainer training transformers' own `LlamaForCausalLM` built with the preset's
hyperparameters and loaded with the same weights (`hf-llama`: what a Hugging
Face user runs for this model, so the gain of our generated model's code shows
against it), and, with `--original PATH`, the original Forgather's own
`forgather.ml.trainer.Trainer` (a checkout of github.com/jdinalt/forgather).
Every other peer trains the same model (a Llama preset
from `templatelib/models/`, `llama_4m` by default, built once with seed 0 and
saved as a generated model directory that each peer loads with
`AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`) on the
same batches (the stdlib corpus packed into `--seq-len` blocks by the data
pipeline, collated as `CausalLMCollator` collates full blocks: input ids,
position ids, an all-ones attention mask, labels with document starts masked),
with the same batch, optimizer (fused AdamW, constant learning rate 1e-3),
gradient clipping at 1.0 and number of steps, each peer in its own process so
peak RSS is that trainer's alone.

Prints tokens/s (all tokens are real: blocks are packed, nothing is padded;
from the median step time after `--warmup` steps; the best of `--repeats`
interleaved runs), peak RSS, MFU against this machine's matmul peak measured
in the same run (in bf16 runs the faster of the bf16 and float32 GEMMs: a CPU
without native bf16 runs float32 faster, and our trainer then uses it), and
the ratios against each peer next to issue 18's aims.

    .venv/bin/python benchmarks/train_speed.py                     # bf16, llama_4m, batch 32x512
    .venv/bin/python benchmarks/train_speed.py --original /work/orig --compile
    .venv/bin/python benchmarks/train_speed.py --no-bf16 --preset llama_25m --batch-size 8
    .venv/bin/python benchmarks/train_speed.py --only forgather --profile   # + profiler table
    .venv/bin/python benchmarks/train_speed.py --checkpointing   # + ours with activation checkpointing

`--checkpointing` adds `forgather-ckpt`: ours with `gradient_checkpointing=True`
(each layer recomputed in the backward), printed with its own ratios, so the
memory it saves and the speed it costs show against the same peers.

Precision (`--bf16`, the default): ours and Hugging Face's train with bf16
autocast over fp32 weights (their `bf16=True`); the original has no autocast,
its bf16 is pure bf16 (weights, gradients and AdamW state in bf16, what its
`default_dtype: bfloat16` gives), so it runs that. `--compile` turns on each
trainer's own `torch_compile` with its own defaults (the original's compiles
with `dynamic=True`).

The decision a reader may question: the original trains our generated model
(loaded with `trust_remote_code`) rather than a model built from its own
templates. Its model templates do not build under the transformers this venv
has (see `cli_speed.py`), and a shared model keeps the comparison to the
trainers themselves. Its trainer runs unmodified from `PATH/src` on this venv's
torch, with two adaptations made in its child process only: `typing.override`
(Python 3.12; this venv is 3.11) is taken from `typing_extensions`, and the
packages its trainer imports but this venv lacks (torchdata, aiohttp) are
installed once with pip into `--original-deps` and appended to `sys.path`
(after this venv's packages).

Every peer runs with `THP_MEM_ALLOC_ENABLE=1` (torch's CPU allocator backs
blocks of 2 MiB and more with huge pages), the environment `forgather train`
gives a run; `--no-thp` runs every peer without it. Our trainer also hands the
heap's freed pages back to the OS after each step on a CPU (its
`release_host_memory` default); the peers do what they do by default.

`--profile` runs `--profile-steps` steps of each trainer (after the warm-up)
under `torch.profiler`, one more process each, and prints per step the host
syncs (reads of a tensor's value into Python: `aten::_local_scalar_dense`,
what `.item()` and `bool(tensor)` call; on a GPU each waits for the device)
and the aten operators dispatched, then our trainer's operators with the most
self CPU time.

FLOPs per token: 6 * N (N: parameters except the input embedding; forward and
backward matmuls) + 12 * layers * seq_len * hidden (attention scores and
values, causal mask not discounted), the PaLM appendix B convention.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PEERS = ("forgather", "forgather-ckpt", "transformers", "hf-llama", "original")
# Peers run only when asked for (--only or --checkpointing).
OPT_IN = {"forgather-ckpt"}
OURS = ("forgather", "forgather-ckpt")
# Issue 18's aims (bf16, with and without compile): ours / peer.
SPEED_AIMS = {"transformers": 1.3, "hf-llama": 1.3, "original": 1.5}
RSS_AIM_ORIGINAL = 0.6  # ours / original's peak RSS, at most
MFU_AIM_BF16 = 0.35
# What the original's trainer imports that this venv may lack (its pyproject's ranges).
ORIGINAL_DEPS = {"torchdata": "torchdata~=0.11", "aiohttp": "aiohttp~=3.9"}
DEFAULT_DEPS_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
DEFAULT_DEPS_DIR = DEFAULT_DEPS_DIR / "forgather-bench" / "original-deps"


# ----------------------------------------------------------------------------- parent side
def matmul_peak(dtype_name: str, size: int = 2048, repeats: int = 10) -> float:
    """Measured GFLOP/s of a size x size matmul in this process (the fastest of `repeats`).

    The fastest, not the mean: on a shared machine other processes steal whole
    time slices, and a peak is what the hardware does when it gets the cores.
    """
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def training_peak(bf16: bool) -> tuple[float, str]:
    """The GFLOP/s that MFU is against, and a line saying what was measured.

    bf16 runs: the faster of the bf16 and float32 GEMM, since on a CPU without
    native bf16 our trainer computes bf16 matmuls as float32 GEMMs.
    """
    precisions = ("bfloat16", "float32") if bf16 else ("float32",)
    peaks = {precision: matmul_peak(precision) for precision in precisions}
    peak = max(peaks.values())
    measured = ", ".join(f"{p} {v:,.0f}" for p, v in peaks.items())
    return peak, f"{measured} GFLOP/s; MFU is against {peak:,.0f}"


def prepare_data(workdir: Path, seq_len: int) -> None:
    """Write the packed stdlib blocks (`blocks_<seq_len>.npz`) once per work directory.

    The blocks are checked against the data pipeline's own collator, so the
    children (which must not import our package: the original's shadows it)
    feed the exact batches `CausalLMCollator` would.
    """
    path = workdir / f"blocks_{seq_len}.npz"
    if path.exists():
        return
    import numpy as np
    import torch

    from forgather.ml.data import (
        CausalLMCollator,
        PackedDataset,
        load_or_train_tokenizer,
        load_splits,
        python_stdlib_source,
    )

    source = python_stdlib_source()
    tokenizer = load_or_train_tokenizer(source, vocab_size=2048)
    train = PackedDataset(load_splits(source, tokenizer, num_proc=1)["train"], seq_len)
    rows = [train[i] for i in range(len(train))]
    input_ids = np.stack([r["input_ids"].numpy() for r in rows]).astype(np.int32)
    position_ids = np.stack([r["position_ids"].numpy() for r in rows]).astype(np.int32)
    expected = CausalLMCollator(tokenizer.pad_token_id)(rows[:4])
    ours = collate(BlockDataset.from_arrays(input_ids[:4], position_ids[:4]).items())
    for key, value in expected.items():
        if not torch.equal(value, ours[key]):
            raise RuntimeError(f"benchmark collate differs from CausalLMCollator on {key!r}")
    np.savez(path, input_ids=input_ids, position_ids=position_ids)


def prepare_model(workdir: Path, preset: str) -> Path:
    """Build `preset` (seed 0) and save it as a generated model directory; return the directory.

    Rebuilt on every run, even in a reused `--workdir`: a directory from an
    earlier checkout holds that checkout's generated code, and the figures
    would measure it instead of this one's.
    """
    import shutil

    import torch

    from forgather.config import ConfigEnvironment
    from forgather.project.workspace import templatelib_searchdirs

    model_dir = workdir / f"model_{preset}"
    shutil.rmtree(model_dir, ignore_errors=True)
    cfg = ConfigEnvironment(templatelib_searchdirs()).load(
        f"{preset}.yaml", output_dir=str(model_dir)
    )
    torch.manual_seed(0)
    cfg.build("model").save_pretrained(model_dir)
    return model_dir


def ensure_original_deps(deps_dir: Path) -> None:
    """pip-install into `deps_dir` what the original's trainer imports and this venv lacks."""
    import importlib.util

    missing = [
        spec
        for module, spec in ORIGINAL_DEPS.items()
        if importlib.util.find_spec(module) is None and not (deps_dir / module).exists()
    ]
    if not missing:
        return
    print(f"installing {', '.join(missing)} for the original's trainer into {deps_dir}")
    for spec in missing:
        # torchdata requires torch: without --no-deps pip would put a second torch in the target.
        no_deps = ["--no-deps"] if spec.startswith("torchdata") else []
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(deps_dir),
             *no_deps, spec],
            check=True,
        )  # fmt: skip


def child_command(which: str, opts: argparse.Namespace, workdir: Path, *extra: str) -> list[str]:
    """The command line of one child run (also used by train_scale.py)."""
    return [
        sys.executable, __file__, "--child", which, "--workdir", str(workdir),
        "--preset", opts.preset, "--steps", str(opts.steps), "--warmup", str(opts.warmup),
        "--batch-size", str(opts.batch_size), "--seq-len", str(opts.seq_len),
        "--bf16" if opts.bf16 else "--no-bf16", *(["--compile"] if opts.compile else []),
        "--original-deps", str(opts.original_deps), *extra,
    ]  # fmt: skip


def run_peer(which: str, opts: argparse.Namespace, workdir: Path, *extra: str) -> dict | str:
    """Run one peer in a child process; its figures, or its error text when it failed."""
    env = dict(os.environ)
    if opts.thp:
        env.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # as `forgather train` sets it
    if which == "original":
        env["PYTHONPATH"] = str(Path(opts.original).resolve() / "src")
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # the checkout stays as it is
    proc = subprocess.run(
        child_command(which, opts, workdir, *extra),
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        return proc.stderr.strip()[-3000:] or f"exit status {proc.returncode}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- child side
class BlockDataset:
    """Packed blocks as a map-style dataset of `{"input_ids", "position_ids"}` int64 tensors."""

    def __init__(self, path: Path | None = None):
        if path is not None:
            import numpy as np

            arrays = np.load(path)
            self.input_ids, self.position_ids = arrays["input_ids"], arrays["position_ids"]

    @classmethod
    def from_arrays(cls, input_ids, position_ids) -> BlockDataset:
        dataset = cls()
        dataset.input_ids, dataset.position_ids = input_ids, position_ids
        return dataset

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict:
        import torch

        return {
            "input_ids": torch.from_numpy(self.input_ids[index]).long(),
            "position_ids": torch.from_numpy(self.position_ids[index]).long(),
        }

    def items(self) -> list[dict]:
        return [self[i] for i in range(len(self))]


def collate(examples: list[dict]) -> dict:
    """What `CausalLMCollator` gives for full blocks (checked in `prepare_data`)."""
    import torch

    input_ids = torch.stack([e["input_ids"] for e in examples])
    position_ids = torch.stack([e["position_ids"] for e in examples])
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "position_ids": position_ids,
        # A document's first token is no target (its logits belong to the previous document).
        "labels": input_ids.masked_fill(position_ids == 0, -100),
    }


def flops_per_token(model, seq_len: int) -> float:
    config = model.config
    embedding = model.get_input_embeddings().weight.numel()
    n = sum(p.numel() for p in model.parameters()) - embedding
    if config.tie_word_embeddings:
        n += embedding  # the head still computes with it
    return 6 * n + 12 * config.num_hidden_layers * seq_len * config.hidden_size


class Profiler:
    """Profiles steps `first`..`first + count - 1` (1-based) from a trainer's step callbacks."""

    def __init__(self, first: int, count: int):
        self.first, self.count, self.prof, self.steps = first, count, None, 0

    def begin(self, step: int) -> None:
        if step + 1 == self.first:
            import torch.profiler

            self.prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.prof.__enter__()

    def end(self, step: int) -> None:
        if self.prof is not None and self.steps < self.count:
            self.steps += 1
            if self.steps == self.count:
                self.prof.__exit__(None, None, None)

    def report(self) -> dict:
        averages = self.prof.key_averages()
        counts = {e.key: e.count for e in averages}
        return {
            "steps": self.steps,
            "host_syncs": counts.get("aten::_local_scalar_dense", 0),
            "operators": sum(c for k, c in counts.items() if k.startswith("aten::")),
            "table": averages.table(sort_by="self_cpu_time_total", row_limit=25),
        }


def transformers_llama(ours):
    """transformers' own `LlamaForCausalLM` with our model's hyperparameters and weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    c = ours.config
    config = LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size, num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads, num_key_value_heads=c.num_key_value_heads,
        head_dim=c.head_dim, max_position_embeddings=c.max_position_embeddings,
        rms_norm_eps=c.rms_norm_eps, rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
        tie_word_embeddings=c.tie_word_embeddings, attn_implementation="sdpa",
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    # The same start: our parameter names are Llama's but for the embedding's module.
    weights = {k.replace("input_encoder.", ""): v for k, v in ours.state_dict().items()}
    model.load_state_dict(weights)
    return model


def proc_kib(path: str, field: str) -> int | None:
    """A "field: N kB" line of a Linux /proc file, in KiB (None without /proc or the field)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """This process's peak resident set size, in MiB.

    Linux's VmHWM, not `getrusage`'s ru_maxrss: a child started by
    `subprocess` (vfork, then exec) inherits its parent's ru_maxrss, so a
    small run would report the parent's peak (train_scale.py's parent, which
    built every preset, showed 897 MiB for each trainer at llama_4m batch 4).
    """
    peak = proc_kib("/proc/self/status", "VmHWM")
    if peak is not None:
        return peak / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB; bytes on macOS
    return peak / (2**20 if sys.platform == "darwin" else 1024)


def run_child(which: str, opts: argparse.Namespace) -> dict:
    """Train with one trainer in this process; return its figures."""
    import warnings

    warnings.filterwarnings("ignore")  # peers' deprecation chatter; figures only
    if which == "original":
        import typing

        import typing_extensions

        typing.override = typing_extensions.override  # the original needs Python 3.12's
        sys.path.append(str(opts.original_deps))  # after this venv's packages
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    workdir = Path(opts.workdir)
    model = AutoModelForCausalLM.from_pretrained(workdir / f"model_{opts.preset}",
                                                 trust_remote_code=True, dtype=torch.float32)  # fmt: skip
    if which == "hf-llama":
        model = transformers_llama(model)
    train = BlockDataset(workdir / f"blocks_{opts.seq_len}.npz")
    outdir = tempfile.mkdtemp(prefix=f"train_speed_{which}_")
    step_times: list[float] = []
    profiler = Profiler(opts.warmup + 1, opts.profile_steps) if opts.profile_steps else None

    class Clock:
        def on_step_begin(self, args, state, control, **kwargs):
            if profiler:
                profiler.begin(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter())
            if profiler:
                profiler.end(state.global_step)

    common = dict(
        max_steps=opts.steps, per_device_train_batch_size=opts.batch_size,
        learning_rate=1e-3, lr_scheduler_type="constant", logging_steps=1, max_grad_norm=1.0,
        save_strategy="no", use_cpu=True, dataloader_num_workers=0, seed=0,
        torch_compile=opts.compile,
    )  # fmt: skip
    if which in ("forgather", "forgather-ckpt"):
        from forgather.ml.trainer import Trainer, TrainerCallback, TrainingArguments

        args = TrainingArguments(output_dir=outdir, report_to="none", disable_tqdm=True,
                                 bf16=opts.bf16, gradient_checkpointing=which == "forgather-ckpt",
                                 **common)  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collate,
                          callbacks=[type("Clock", (Clock, TrainerCallback), {})()])  # fmt: skip
    elif which in ("transformers", "hf-llama"):
        import transformers

        args = transformers.TrainingArguments(output_dir=outdir, report_to="none",
                                              disable_tqdm=True, bf16=opts.bf16,
                                              optim="adamw_torch_fused", **common)  # fmt: skip
        trainer = transformers.Trainer(
            model=model, args=args, train_dataset=train, data_collator=collate,
            callbacks=[type("Clock", (Clock, transformers.TrainerCallback), {})()],
        )  # fmt: skip
    else:
        from functools import partial

        from forgather.ml.distributed import StaticDistributedEnvironment
        from forgather.ml.loss import CausalLoss
        from forgather.ml.trainer import Trainer, TrainingArguments

        if opts.bf16:
            model = model.to(torch.bfloat16)  # its bf16: pure bf16 (it has no autocast)
        args = TrainingArguments(output_dir=outdir, num_train_epochs=1000, **common)
        trainer = Trainer(
            model=model, args=args, train_dataset=train, data_collator=collate,
            # It needs an eval dataset to start (its state takes the eval loader's length);
            # eval_strategy is "no", so this block is never evaluated.
            eval_dataset=BlockDataset.from_arrays(train.input_ids[-1:], train.position_ids[-1:]),
            callbacks=[Clock()], distributed_env=StaticDistributedEnvironment(),
            compute_loss_func=CausalLoss(),  # its trainer template's loss
            optimizer_factory=partial(torch.optim.AdamW, lr=1e-3, fused=True),
        )  # fmt: skip
    trainer.train()
    import shutil

    shutil.rmtree(outdir, ignore_errors=True)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    timed = step_times[opts.warmup :]
    # Median step time: robust to other processes stealing the (shared) cores for a while.
    step_seconds = statistics.median(b - a for a, b in zip(timed, timed[1:], strict=False))
    result = {
        "tokens_per_s": opts.batch_size * opts.seq_len / step_seconds,
        "peak_rss_mib": peak_rss_mib(),
        "flops_per_token": flops_per_token(model, opts.seq_len),
        "parameters": sum(p.numel() for p in model.parameters()),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "threads": torch.get_num_threads(),
    }
    if profiler:
        result["profile"] = profiler.report()
    return result


# ----------------------------------------------------------------------------- main
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="llama_4m", help="a model in templatelib/models/")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2, help="steps not timed")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--compile", action="store_true", help="torch_compile in every trainer")
    p.add_argument("--thp", action=argparse.BooleanOptionalAction, default=True,
                   help="THP_MEM_ALLOC_ENABLE=1 for every peer (what `forgather train` sets)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=2, help="runs per trainer, best kept")
    p.add_argument("--only", choices=PEERS, action="append", help="run only these (repeatable)")
    p.add_argument(
        "--checkpointing",
        action="store_true",
        help="also run ours with activation checkpointing (forgather-ckpt)",
    )
    p.add_argument("--original", type=Path, help="a checkout of the original Forgather")
    p.add_argument("--original-deps", type=Path, default=DEFAULT_DEPS_DIR,
                   help="where the original's missing dependencies are installed")  # fmt: skip
    p.add_argument("--profile", action="store_true",
                   help="profile each trainer's steps; print ours in full")  # fmt: skip
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--workdir", type=Path, help="reuse the prepared data here (models are rebuilt)")
    p.add_argument("--child", choices=PEERS, help=argparse.SUPPRESS)
    return p


def aim_text(value: float, aim: float, at_most: bool = False) -> str:
    met = value <= aim if at_most else value >= aim
    return f"(aim {'<=' if at_most else '>='} {aim:.2f}x: {'met' if met else 'not met'})"


def print_results(results: dict[str, dict | str], opts: argparse.Namespace, peak: float) -> None:
    print(
        f"\n{'trainer':<14}{'tokens/s':>10}{'peak RSS MiB':>14}{'MFU':>8}{'loss first->last':>20}"
    )
    for which, r in results.items():
        if isinstance(r, str):
            print(f"{which:<14}failed: {r.splitlines()[-1] if r else ''}")
            continue
        mfu = r["tokens_per_s"] * r["flops_per_token"] / (peak * 1e9)
        print(f"{which:<14}{r['tokens_per_s']:>10,.0f}{r['peak_rss_mib']:>14,.0f}{mfu:>8.1%}"
              f"{r['first_loss']:>11.3f} -> {r['last_loss']:.3f}")  # fmt: skip
    for variant in OURS:
        ours = results.get(variant)
        if isinstance(ours, dict):
            print_ratios(variant, ours, results, opts, peak)


def print_ratios(
    variant: str, ours: dict, results: dict[str, dict | str], opts: argparse.Namespace, peak: float
) -> None:
    """One of our variants against every peer, next to issue 18's aims."""
    name = "ours" if variant == "forgather" else variant
    print()
    if opts.bf16:
        mfu = ours["tokens_per_s"] * ours["flops_per_token"] / (peak * 1e9)
        print(f"MFU {name}: {mfu:.1%} of the matmul peak (aim >= {MFU_AIM_BF16:.0%}: "
              f"{'met' if mfu >= MFU_AIM_BF16 else 'not met'})")  # fmt: skip
    for which, aim in SPEED_AIMS.items():
        theirs = results.get(which)
        if isinstance(theirs, dict):
            ratio = ours["tokens_per_s"] / theirs["tokens_per_s"]
            note = aim_text(ratio, aim) if opts.bf16 else "(aims are for bf16)"
            print(f"speed {name}/{which}: {ratio:.2f}x {note}")
    for which, theirs in results.items():
        if which not in OURS and isinstance(theirs, dict):
            ratio = ours["peak_rss_mib"] / theirs["peak_rss_mib"]
            note = aim_text(ratio, RSS_AIM_ORIGINAL, at_most=True) if which == "original" else ""
            print(f"peak RSS {name}/{which}: {ratio:.2f}x {note}".rstrip())


def profile(opts: argparse.Namespace, peers: list[str], workdir: Path) -> None:
    """Profile a few steps of every peer (one more child each); print ours in full."""
    profile_opts = argparse.Namespace(**vars(opts))
    profile_opts.steps = opts.warmup + opts.profile_steps + 1
    extra = ("--profile", "--profile-steps", str(opts.profile_steps))
    profiles = {which: run_peer(which, profile_opts, workdir, *extra) for which in peers}
    print(f"\nprofiled: {opts.profile_steps} steps after the warm-up (torch.profiler, CPU)")
    print(f"{'trainer':<14}{'host syncs/step':>17}{'aten ops/step':>15}")
    for which, r in profiles.items():
        if isinstance(r, str):
            print(f"{which:<14}failed: {r.splitlines()[-1] if r else ''}")
            continue
        steps = r["profile"]["steps"]
        print(f"{which:<14}{r['profile']['host_syncs'] / steps:>17.1f}"
              f"{r['profile']['operators'] / steps:>15,.0f}")  # fmt: skip
    ours = profiles.get("forgather")
    if isinstance(ours, dict):
        print("\nour trainer, operators by self CPU time:")
        print(ours["profile"]["table"])


def main(argv: list[str] | None = None) -> None:
    p = parser()
    opts = p.parse_args(argv)
    if opts.steps <= opts.warmup + 1:
        p.error("--steps must exceed --warmup + 1")
    if opts.child:
        opts.profile_steps = opts.profile_steps if opts.profile else 0
        print(json.dumps(run_child(opts.child, opts)))
        return
    peers = opts.only or [
        w for w in PEERS
        if (w != "original" or opts.original) and (w not in OPT_IN or opts.checkpointing)
    ]  # fmt: skip
    if "original" in peers and not opts.original:
        p.error("--only original needs --original PATH")

    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="train_speed_"))
    workdir.mkdir(parents=True, exist_ok=True)
    prepare_data(workdir, opts.seq_len)
    prepare_model(workdir, opts.preset)
    if "original" in peers:
        ensure_original_deps(opts.original_deps)

    peak, measured = training_peak(opts.bf16)
    load = os.getloadavg()[0]
    print(f"matmul peak (2048^2): {measured}; load average {load:.2f} on {os.cpu_count()} CPUs")
    print(f"{opts.preset}, batch {opts.batch_size}x{opts.seq_len}, {opts.steps} steps "
          f"({opts.warmup} untimed), bf16 {'on' if opts.bf16 else 'off'} (ours, HF: autocast; "
          f"original: pure bf16), torch.compile {'on' if opts.compile else 'off'}")  # fmt: skip
    results: dict[str, dict | str] = {}
    # Interleaved repeats, best kept: the machine's other load changes over minutes.
    for _ in range(opts.repeats):
        for which in peers:
            result = run_peer(which, opts, workdir)
            best = results.get(which)
            if isinstance(result, str):
                results.setdefault(which, result)
            elif not isinstance(best, dict) or result["tokens_per_s"] > best["tokens_per_s"]:
                results[which] = result
    print_results(results, opts, peak)
    for which, r in results.items():
        if isinstance(r, str):
            print(f"\n{which} failed:\n{r}")
    if opts.profile:
        profile(opts, peers, workdir)
    if not opts.workdir:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
