"""Training speed and memory of the generated Llama-style model next to transformers' Llama.

    .venv/bin/python benchmarks/model_speed.py                      # CPU, fp32 and bf16 autocast
    .venv/bin/python benchmarks/model_speed.py --batch 4 --seq 256 --steps 5
    .venv/bin/python benchmarks/model_speed.py --device cuda        # on a GPU (bf16 with sdpa)

Both models have the same config (``llama_4m.yaml``: hidden 256, SwiGLU 768,
4 layers, 4 heads of 64, 2,048-token vocabulary; override with -D-style
``--set hidden_size=512``), the same weights (copied with
``convert_llama_state_dict``), the same batch and ``sdpa`` attention. One
step is forward + loss + backward (no optimizer). Timed steps alternate
between the two models so load from other processes affects both alike; the
table shows the median step. Peak memory is measured separately, each model
in a fresh process: on CPU the growth of the process's peak resident set
(``VmHWM``, reset after building) during the steps, on CUDA
``max_memory_allocated``. Utilisation is model FLOPs (6 x parameters +
attention, per token) against the machine peaks in DESIGN.md (CPU: 320
GFLOP/s fp32, 2,200 GFLOP/s bf16).

Aim (issue 4): ratio (ours / transformers) of tokens/s >= 1.0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402  (HF_HUB_OFFLINE must be set before transformers is imported)
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

from forgather.config import ConfigEnvironment  # noqa: E402
from forgather.ml.model_conversion import convert_llama_state_dict  # noqa: E402
from forgather.project.workspace import templatelib_searchdirs  # noqa: E402

CPU_PEAK_GFLOPS = {"fp32": 320.0, "bf16": 2200.0}


def build_models(sizes: dict, out_dir: str, device: str):
    """(ours, transformers') with identical config and weights, in train mode."""
    cfg = ConfigEnvironment(templatelib_searchdirs()).load("llama_4m.yaml", output_dir=out_dir)
    for key, value in sizes.items():
        cfg.set_value(f"model.hyperparameters.{key}", value)
    torch.manual_seed(0)
    ours = cfg.build("model", attn_implementation="sdpa")
    c = ours.config
    reference = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=c.vocab_size,
            hidden_size=c.hidden_size,
            intermediate_size=c.intermediate_size,
            num_attention_heads=c.num_attention_heads,
            num_key_value_heads=c.num_key_value_heads,
            head_dim=c.head_dim,
            num_hidden_layers=c.num_hidden_layers,
            rms_norm_eps=c.rms_norm_eps,
            max_position_embeddings=c.max_position_embeddings,
            tie_word_embeddings=False,
            rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
            attn_implementation="sdpa",
        )
    )
    ours.load_state_dict(convert_llama_state_dict(reference.state_dict()))
    return ours.to(device).train(), reference.to(device).train()


def step(model, ids, precision: str) -> None:
    autocast = (
        torch.autocast(ids.device.type, dtype=torch.bfloat16)
        if precision == "bf16"
        else contextlib.nullcontext()
    )
    with autocast:
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    model.zero_grad(set_to_none=True)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_pair(models, ids, precision: str, steps: int, warmup: int) -> list[float]:
    """Median seconds per step of each model, timed alternately."""
    times = [[] for _ in models]
    for i in range(warmup + steps):
        for j, model in enumerate(models):
            synchronize(str(ids.device))
            start = time.perf_counter()
            step(model, ids, precision)
            synchronize(str(ids.device))
            if i >= warmup:
                times[j].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _vm(field: str) -> int:
    """A field of /proc/self/status in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def peak_memory_child(args) -> None:
    """Child process: build, then report the peak memory growth of a few steps as JSON."""
    sizes = json.loads(args.sizes)
    with tempfile.TemporaryDirectory() as out:
        ours, reference = build_models(sizes, os.path.join(out, "llama"), args.device)
    model = ours if args.which == "ours" else reference
    del ours, reference
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq), device=args.device)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        base = _vm("VmRSS")
    for _ in range(2):
        step(model, ids, args.precision)
    synchronize(args.device)
    peak = torch.cuda.max_memory_allocated() if args.device.startswith("cuda") else _vm("VmHWM")
    print(json.dumps({"peak_bytes": peak - base}))


def peak_memory(which: str, precision: str, sizes: dict, args) -> int:
    command = [
        sys.executable,
        __file__,
        "--child",
        which,
        "--precision-child",
        precision,
        "--sizes-json",
        json.dumps(sizes),
        "--batch",
        str(args.batch),
        "--seq",
        str(args.seq),
        "--device",
        args.device,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_bytes"]


def model_flops_per_token(config, seq: int) -> float:
    """Training FLOPs per token: 6 x parameters + 12 x layers x width x sequence (attention)."""
    d, layers, ffn, vocab = (
        config.hidden_size,
        config.num_hidden_layers,
        config.intermediate_size,
        config.vocab_size,
    )
    q_dim = config.num_attention_heads * config.head_dim
    kv_dim = config.num_key_value_heads * config.head_dim
    per_layer = d * (2 * q_dim + 2 * kv_dim) + 3 * d * ffn
    params = layers * per_layer + d * vocab  # embedding lookups cost no FLOPs; the head does
    return 6 * params + 12 * layers * q_dim * seq


def parse_sets(items: list[str]) -> dict:
    sizes = {}
    for item in items:
        key, _, value = item.partition("=")
        sizes[key] = json.loads(value)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", nargs="+", default=None, choices=["fp32", "bf16"])
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="model hyperparameter overrides (JSON values)",
    )
    parser.add_argument("--child", choices=["ours", "transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--precision-child", help=argparse.SUPPRESS)
    parser.add_argument("--sizes-json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.which, args.precision, args.sizes = args.child, args.precision_child, args.sizes_json
        peak_memory_child(args)
        return

    precisions = args.precision or (
        ["bf16"] if args.device.startswith("cuda") else ["fp32", "bf16"]
    )
    sizes = parse_sets(args.set)
    with tempfile.TemporaryDirectory() as out:
        ours, reference = build_models(sizes, os.path.join(out, "llama"), args.device)
    tokens = args.batch * args.seq
    flops = model_flops_per_token(ours.config, args.seq) * tokens
    params = sum(p.numel() for p in ours.parameters())
    print(
        f"Llama-style, {params / 1e6:.2f}M parameters; batch {args.batch} x {args.seq} tokens; "
        f"device {args.device}, {torch.get_num_threads()} threads, sdpa; median of {args.steps} steps"
    )
    print(f"{'precision':<10}{'model':<14}{'tokens/s':>10}{'ms/step':>10}{'peak MB':>10}{'MFU':>7}")
    ids = torch.randint(0, ours.config.vocab_size, (args.batch, args.seq), device=args.device)
    for precision in precisions:
        seconds = time_pair([ours, reference], ids, precision, args.steps, args.warmup)
        memory = [peak_memory(which, precision, sizes, args) for which in ("ours", "transformers")]
        for name, s, mem in zip(("forgather", "transformers"), seconds, memory, strict=True):
            mfu = ""
            if args.device == "cpu":
                mfu = f"{flops / s / 1e9 / CPU_PEAK_GFLOPS[precision]:.0%}"
            print(
                f"{precision:<10}{name:<14}{tokens / s:>10,.0f}{s * 1e3:>10.0f}{mem / 2**20:>10.0f}{mfu:>7}"
            )
        print(
            f"{precision:<10}{'ratio':<14}{seconds[1] / seconds[0]:>10.2f}{'':>10}{memory[0] / memory[1]:>10.2f}"
        )


if __name__ == "__main__":
    main()
