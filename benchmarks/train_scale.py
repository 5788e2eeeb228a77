"""How training cost grows: tokens/s and peak RSS against model size and batch, ours next to peers.

Every point (a preset, a batch size, a trainer) is one child run of
`train_speed.py` (its own process, so peak RSS is that run's alone), with the
same model directory, blocks, optimizer and settings as there; the peers of a
point run back to back, so they see the same machine load. Prints, per point,
each trainer's tokens/s, peak RSS and MFU (against the matmul peak measured in
this run), the FLOPs per token of the preset, and ours / peer for speed and
memory.

    .venv/bin/python benchmarks/train_scale.py                        # fp32, ~10 min on 2 cores
    .venv/bin/python benchmarks/train_scale.py --bf16 --original /work/orig
    .venv/bin/python benchmarks/train_scale.py --presets llama_4m --batches 4,8 --markdown

Which points run: every preset in `--presets` with every batch in
`--batches`, except those whose step would exceed `--max-step-tflop` (the
default keeps the whole run near 10 minutes on 2 cores: llama_4m up to batch
32, llama_25m up to 16, llama_100m up to 8) and those that would not fit in
memory: a point is skipped when twice the largest peak RSS measured at half
its batch exceeds what /proc/meminfo says is available.

The decision a reader may question: steps are few (`--steps 4 --warmup 1`:
the median of two timed steps) so that the largest models fit the time; the
figures are for seeing how cost grows, `train_speed.py` (more steps, repeats)
is the one to quote a single point from.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_speed  # noqa: E402  (the child runs and preparation; nothing copied)


def mem_available_mib() -> float:
    """MemAvailable from /proc/meminfo, in MiB (inf where there is none)."""
    available = train_speed.proc_kib("/proc/meminfo", "MemAvailable")
    return float("inf") if available is None else available / 1024


def step_tflop(flops_per_token: float, batch: int, seq_len: int) -> float:
    return flops_per_token * batch * seq_len / 1e12


def preset_flops_per_token(workdir: Path, preset: str, seq_len: int) -> tuple[int, float]:
    """Parameters and FLOPs per token of a prepared preset (its model built on the meta device)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    model_dir = workdir / f"model_{preset}"
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=True)
    params = sum(p.numel() for p in model.parameters())
    return params, train_speed.flops_per_token(model, seq_len)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default="llama_4m,llama_25m,llama_100m")
    p.add_argument("--batches", default="4,8,16,32")
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--compile", action="store_true", help="torch_compile in every trainer")
    p.add_argument("--max-step-tflop", type=float, default=2.75,
                   help="skip points whose training step computes more than this")  # fmt: skip
    p.add_argument("--peers", default="forgather,transformers",
                   help="comma-separated; 'original' is added by --original")  # fmt: skip
    p.add_argument("--original", type=Path, help="a checkout of the original Forgather")
    p.add_argument("--original-deps", type=Path, default=train_speed.DEFAULT_DEPS_DIR)
    p.add_argument("--workdir", type=Path, help="reuse the prepared data here (models are rebuilt)")
    p.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    opts = p.parse_args(argv)
    presets = opts.presets.split(",")
    batches = sorted(int(b) for b in opts.batches.split(","))
    peers = [w for w in opts.peers.split(",") if w]
    if opts.original and "original" not in peers:
        peers.append("original")
    if "original" in peers and not opts.original:
        p.error("the original peer needs --original PATH")

    workdir = opts.workdir or Path(tempfile.mkdtemp(prefix="train_scale_"))
    workdir.mkdir(parents=True, exist_ok=True)
    train_speed.prepare_data(workdir, opts.seq_len)
    for preset in presets:
        train_speed.prepare_model(workdir, preset)
    if "original" in peers:
        train_speed.ensure_original_deps(opts.original_deps)

    peak, measured = train_speed.training_peak(opts.bf16)
    print(f"matmul peak (2048^2): {measured}; load average "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; {opts.steps} steps "
          f"({opts.warmup} untimed) of {opts.seq_len}-token blocks per point, "
          f"torch.compile {'on' if opts.compile else 'off'}")  # fmt: skip

    rows = []  # (preset, params, flops/token, batch, {peer: result | str})
    for preset in presets:
        params, fpt = preset_flops_per_token(workdir, preset, opts.seq_len)
        rss_at: dict[int, float] = {}
        for batch in batches:
            if step_tflop(fpt, batch, opts.seq_len) > opts.max_step_tflop:
                rows.append((preset, params, fpt, batch, "skipped (time)"))
                continue
            half = rss_at.get(batch // 2)
            if half is not None and 2 * half > mem_available_mib():
                rows.append((preset, params, fpt, batch, "skipped (memory)"))
                continue
            child_opts = train_speed.parser().parse_args(
                ["--preset", preset, "--batch-size", str(batch), "--seq-len", str(opts.seq_len),
                 "--steps", str(opts.steps), "--warmup", str(opts.warmup),
                 "--bf16" if opts.bf16 else "--no-bf16", *(["--compile"] if opts.compile else []),
                 "--original-deps", str(opts.original_deps),
                 *(["--original", str(opts.original)] if opts.original else [])]
            )  # fmt: skip
            results = {which: train_speed.run_peer(which, child_opts, workdir) for which in peers}
            measured = [r["peak_rss_mib"] for r in results.values() if isinstance(r, dict)]
            if measured:
                rss_at[batch] = max(measured)
            rows.append((preset, params, fpt, batch, results))
            print_row(rows[-1], peers, peak, header=len(rows) == 1)
    print_table(rows, peers, peak, markdown=False)
    if opts.markdown:
        print_table(rows, peers, peak, markdown=True)
    if not opts.workdir:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


SHORT = {"forgather": "ours", "transformers": "HF", "original": "orig"}


def cells(row, peers: list[str], peak: float) -> list[str]:
    preset, params, fpt, batch, results = row
    out = [preset, f"{params / 1e6:.1f}M", f"{fpt / 1e6:,.0f}", str(batch)]
    if isinstance(results, str):
        return out + [results] + [""] * (len(headers(peers)) - len(out) - 1)
    for which in peers:
        r = results[which]
        if isinstance(r, str):
            out += ["failed", "", ""]
        else:
            mfu = r["tokens_per_s"] * r["flops_per_token"] / (peak * 1e9)
            out += [f"{r['tokens_per_s']:,.0f}", f"{r['peak_rss_mib']:,.0f}", f"{mfu:.0%}"]
    ours = results.get("forgather")
    for which in ratio_peers(peers):
        theirs = results[which]
        if isinstance(ours, dict) and isinstance(theirs, dict):
            out += [f"{ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x",
                    f"{ours['peak_rss_mib'] / theirs['peak_rss_mib']:.2f}x"]  # fmt: skip
        else:
            out += ["", ""]
    return out


def ratio_peers(peers: list[str]) -> list[str]:
    """The peers ours is compared with (none when ours is not run)."""
    return [w for w in peers if w != "forgather"] if "forgather" in peers else []


def headers(peers: list[str]) -> list[str]:
    out = ["model", "params", "MFLOP/token", "batch"]
    for which in peers:
        name = SHORT[which]
        out += [f"{name} tok/s", f"{name} RSS MiB", f"{name} MFU"]
    for which in ratio_peers(peers):
        out += [f"speed ours/{SHORT[which]}", f"RSS ours/{SHORT[which]}"]
    return out


def print_row(row, peers: list[str], peak: float, header: bool) -> None:
    """One point as soon as it is measured (the whole run takes minutes)."""
    if header:
        print("  ".join(headers(peers)))
    print("  ".join(c for c in cells(row, peers, peak) if c), flush=True)


def print_table(rows, peers: list[str], peak: float, markdown: bool) -> None:
    table = [headers(peers)] + [cells(row, peers, peak) for row in rows]
    print()
    if markdown:
        print("| " + " | ".join(table[0]) + " |")
        print("|" + "---|" * len(table[0]))
        for line in table[1:]:
            print("| " + " | ".join(line) + " |")
        return
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    for line in table:
        print("  ".join(c.rjust(w) if i else c.ljust(w)
                        for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip())  # fmt: skip
    failures = [(r[0], r[3], w, v) for r in rows if isinstance(r[4], dict)
                for w, v in r[4].items() if isinstance(v, str)]  # fmt: skip
    if any(isinstance(r[4], str) for r in rows):
        print(
            "skipped (time): the step computes more than --max-step-tflop; skipped (memory): "
            "twice the peak RSS at half the batch exceeds the memory available"
        )
    for preset, batch, which, error in failures:
        print(f"\n{preset} batch {batch}, {which} failed:\n{error}")


if __name__ == "__main__":
    main()
