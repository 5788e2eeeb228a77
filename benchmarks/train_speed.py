"""Training throughput and peak memory: Forgather's Trainer next to transformers.Trainer.

Both trainers train the same model (the 4.4M Llama preset, `llama_4m.yaml`:
hidden 256, FFN 768, 4 heads, 4 layers, 2k vocabulary) on the same data (the
stdlib corpus, packed into 512-token blocks, the data pipeline's collator and
tokenizer), with the same batch, optimizer (fused AdamW, constant learning
rate) and number of steps, each in its own process so peak RSS is that
trainer's alone. Prints tokens/s (from the median step time after warmup; the
best of `--repeats` interleaved runs), peak RSS, and the model FLOP utilisation
against this machine's matmul peak measured by the script.

    .venv/bin/python benchmarks/train_speed.py                 # bf16 autocast, batch 32x512
    .venv/bin/python benchmarks/train_speed.py --no-bf16 --steps 6
    .venv/bin/python benchmarks/train_speed.py --only forgather --compile --warmup 3

FLOPs per token: 6 * N (N: parameters except the input embedding; forward and
backward matmuls) + 12 * layers * seq_len * hidden (attention scores and
values, causal mask not discounted), the PaLM appendix B convention.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def matmul_peak(dtype_name: str, size: int = 2048, repeats: int = 10) -> float:
    """Measured GFLOP/s of a size x size matmul in this process."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def build_model_and_data(workdir: str, seq_len: int):
    """The llama_4m model (seed 0) and the packed stdlib training blocks."""
    import torch

    from forgather.config import ConfigEnvironment
    from forgather.ml.data import (
        CausalLMCollator,
        PackedDataset,
        load_or_train_tokenizer,
        load_splits,
        python_stdlib_source,
    )
    from forgather.project.workspace import templatelib_searchdirs

    source = python_stdlib_source()
    tokenizer = load_or_train_tokenizer(source, vocab_size=2048)
    train = PackedDataset(load_splits(source, tokenizer, num_proc=1)["train"], seq_len)
    collator = CausalLMCollator(tokenizer.pad_token_id)
    cfg = ConfigEnvironment(templatelib_searchdirs()).load(
        "llama_4m.yaml", output_dir=os.path.join(workdir, "model")
    )
    torch.manual_seed(0)
    return cfg.build("model"), train, collator


def flops_per_token(model, seq_len: int) -> float:
    config = model.config
    embedding = model.get_input_embeddings().weight.numel()
    n = sum(p.numel() for p in model.parameters()) - embedding
    if config.tie_word_embeddings:
        n += embedding  # the head still computes with it
    return 6 * n + 12 * config.num_hidden_layers * seq_len * config.hidden_size


def run_child(which: str, opts: argparse.Namespace) -> dict:
    """Train with one trainer in this process; return its figures."""
    import torch

    torch.manual_seed(0)
    workdir = tempfile.mkdtemp(prefix=f"train_speed_{which}_")
    model, train, collator = build_model_and_data(workdir, opts.seq_len)
    step_times: list[float] = []
    common = dict(
        max_steps=opts.steps, per_device_train_batch_size=opts.batch_size,
        learning_rate=1e-3, lr_scheduler_type="constant", logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True, bf16=opts.bf16,
        use_cpu=True, dataloader_num_workers=0, seed=0, torch_compile=opts.compile,
    )  # fmt: skip
    if which == "forgather":
        from forgather.ml.trainer import Trainer, TrainerCallback, TrainingArguments

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                step_times.append(time.perf_counter())

        args = TrainingArguments(output_dir=workdir, **common)
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collator,
                          callbacks=[Clock()])  # fmt: skip
    else:
        import transformers

        class Clock(transformers.TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                step_times.append(time.perf_counter())

        args = transformers.TrainingArguments(output_dir=workdir, optim="adamw_torch_fused",
                                              **common)  # fmt: skip
        trainer = transformers.Trainer(model=model, args=args, train_dataset=train,
                                       data_collator=collator, callbacks=[Clock()])  # fmt: skip
    trainer.train()
    shutil.rmtree(workdir, ignore_errors=True)
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    timed = step_times[opts.warmup :]
    # Median step time: robust to other processes stealing the (shared) cores for a while.
    step_seconds = statistics.median(b - a for a, b in zip(timed, timed[1:], strict=False))
    return {
        "tokens_per_s": opts.batch_size * opts.seq_len / step_seconds,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "flops_per_token": flops_per_token(model, opts.seq_len),
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2, help="steps not timed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--compile", action="store_true", help="torch_compile in both trainers")
    parser.add_argument("--repeats", type=int, default=2, help="runs per trainer, best kept")
    parser.add_argument("--only", choices=["forgather", "transformers"])
    parser.add_argument("--child", choices=["forgather", "transformers"], help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.steps <= opts.warmup + 1:
        parser.error("--steps must exceed --warmup + 1")
    if opts.child:
        print(json.dumps(run_child(opts.child, opts)))
        return

    precision = "bfloat16" if opts.bf16 else "float32"
    peak = matmul_peak(precision)
    print(f"matmul peak ({precision}, 2048^2): {peak:,.0f} GFLOP/s")
    print(f"batch {opts.batch_size}x{opts.seq_len}, {opts.steps} steps ({opts.warmup} untimed), "
          f"bf16 autocast {'on' if opts.bf16 else 'off'}, "
          f"torch.compile {'on' if opts.compile else 'off'}")  # fmt: skip
    child_argv = [
        *("--steps", str(opts.steps), "--warmup", str(opts.warmup)),
        *("--batch-size", str(opts.batch_size), "--seq-len", str(opts.seq_len)),
        "--bf16" if opts.bf16 else "--no-bf16",
        *(["--compile"] if opts.compile else []),
    ]
    results: dict[str, dict] = {}
    # Interleaved repeats, best kept: the machine's other load changes over minutes.
    for _ in range(opts.repeats):
        for which in [opts.only] if opts.only else ["forgather", "transformers"]:
            proc = subprocess.run(
                [sys.executable, __file__, *child_argv, "--child", which],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                sys.exit(f"{which} run failed:\n{proc.stderr}")
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if which not in results or result["tokens_per_s"] > results[which]["tokens_per_s"]:
                results[which] = result

    print(
        f"\n{'trainer':<14}{'tokens/s':>10}{'peak RSS MiB':>14}{'MFU':>8}{'loss first->last':>20}"
    )
    for which, r in results.items():
        mfu = r["tokens_per_s"] * r["flops_per_token"] / (peak * 1e9)
        print(f"{which:<14}{r['tokens_per_s']:>10,.0f}{r['peak_rss_mib']:>14,.0f}{mfu:>8.1%}"
              f"{r['first_loss']:>11.3f} -> {r['last_loss']:.3f}")  # fmt: skip
    if len(results) == 2:
        ours, theirs = results["forgather"], results["transformers"]
        print(f"\nspeed ratio (forgather / transformers): "
              f"{ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x; peak RSS ratio: "
              f"{ours['peak_rss_mib'] / theirs['peak_rss_mib']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
