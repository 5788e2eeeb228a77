"""Model FLOP utilisation (MFU) of training: Forgather's Trainer next to Hugging Face's Llama.

Builds a Llama preset from the shipped templates (`llama_1b.yaml` by default),
trains it with Forgather's `Trainer` (bf16 autocast, `torch_compile`) on
random token blocks, then trains Hugging Face's `LlamaForCausalLM` with the
same hyperparameters in a plain loop (same batch, sequence length, autocast,
compile, fused AdamW, gradient clipping) as the reference. Prints tokens/s,
MFU and the ratio of the two.

    python benchmarks/train_mfu.py                                  # GPU: llama_1b, batch 8x2048
    python benchmarks/train_mfu.py --out results/                   # also results.json, profiles
    python benchmarks/train_mfu.py --preset llama_4m --device cpu --steps 3

Timing: `--warmup` steps (compilation, allocator warm-up) are not timed; the
next `--steps` are timed between two device synchronisations, so the loop
runs as it would in a real run (no per-step sync); then `--profile-steps`
more run under `torch.profiler`, whose table of the busiest operators and a
breakdown of the device time by kernel kind (matmul, attention, fused
elementwise, optimizer...) go to `--out`.

MFU = tokens/s * FLOPs per token / peak. FLOPs per token: 6 * N (N: the
parameters except the input embedding, which is a lookup; the untied head is
a matmul and counts) + 12 * layers * heads * head_dim * seq_len (attention
scores and values, causal mask not discounted), the PaLM appendix B
convention. The peak is measured in the same run (an 8192^3 bf16 matmul on a
GPU, 1024^3 on a CPU); on an H100 or H200 MFU is also given against the
989 TFLOP/s dense bf16 datasheet figure.

The decision a reader may question: both sides run in this one process, one
after the other (ours first), with the compiler's caches reset in between, so
they see the same GPU clocks and the same measured peak; a side that runs out
of memory is retried at half the batch (the other side then uses that batch).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Dense bf16 tensor-core peak from the datasheets (FLOP/s), by device-name substring.
SPEC_PEAKS = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12}


# ----------------------------------------------------------------------------- measures
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measured_peak(device: torch.device) -> float:
    """FLOP/s of a large bf16 matmul on `device`, measured now (mean of timed repeats)."""
    size, warmup, repeats = (8192, 200, 50) if device.type == "cuda" else (1024, 3, 5)
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, dtype=torch.bfloat16, device=device, generator=gen)
    b = torch.randn(size, size, dtype=torch.bfloat16, device=device, generator=gen)
    for _ in range(warmup):  # on a GPU about 0.3 s: the clocks settle under load
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def spec_peak(device: torch.device) -> float | None:
    """The datasheet's dense bf16 peak of this GPU, when it is one we know."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in SPEC_PEAKS.items() if key in name), None)


def flops_per_token(model: torch.nn.Module, seq_len: int) -> float:
    """Training FLOPs per token (module docstring): 6 N + 12 L H T."""
    config = model.config
    embedding = model.get_input_embeddings().weight.numel()
    n = sum(p.numel() for p in model.parameters()) - embedding
    if config.tie_word_embeddings:
        n += embedding  # the head computes with it
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    width = config.num_attention_heads * head_dim
    return 6 * n + 12 * config.num_hidden_layers * width * seq_len


# ------------------------------------------------------------------------------- data
class RandomBlocks(torch.utils.data.Dataset):
    """`count` fixed blocks of uniformly random token ids; labels are the inputs (HF style)."""

    def __init__(self, vocab_size: int, seq_len: int, count: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.blocks = torch.randint(0, vocab_size, (count, seq_len), generator=gen)

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[index], "labels": self.blocks[index]}

    def batches(self, batch: int, device: torch.device) -> list[dict[str, torch.Tensor]]:
        """Every block, in batches of `batch`: what a run trains on, for the probe below."""
        return [
            {"input_ids": blocks, "labels": blocks}
            for blocks in self.blocks.to(device).split(batch)
        ]


def probe_loss(model, batches: list[dict[str, torch.Tensor]], device: torch.device) -> float:
    """The mean loss over `batches`, without gradients and outside any compiled wrapper.

    Taken before and after a run: a side whose loss did not fall did not train
    (for example, gradients that came out as zeros), and its speed means nothing.
    """
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        return sum(float(model.forward(**sample).loss) for sample in batches) / len(batches)


# ------------------------------------------------------------------------------ clock
class StepClock:
    """Times the steps after `warmup` and profiles the `profile` steps after those.

    `step_done(n)` is called after optimizer step n (1-based). The device is
    synchronised only at the phase boundaries.
    """

    def __init__(self, device: torch.device, warmup: int, timed: int, profile: int) -> None:
        self.device, self.warmup, self.timed, self.profile = device, warmup, timed, profile
        self.start = time.perf_counter()
        self.t0 = self.t1 = self.t2 = 0.0
        self.profiler: torch.profiler.profile | None = None

    @property
    def total_steps(self) -> int:
        return self.warmup + self.timed + self.profile

    def step_done(self, step: int) -> None:
        if step == self.warmup:
            sync(self.device)
            self.t0 = time.perf_counter()
        if step == self.warmup + self.timed:
            sync(self.device)
            self.t1 = time.perf_counter()
            if self.profile:
                activities = [torch.profiler.ProfilerActivity.CPU]
                if self.device.type == "cuda":
                    activities.append(torch.profiler.ProfilerActivity.CUDA)
                self.profiler = torch.profiler.profile(activities=activities)
                self.profiler.__enter__()
        if self.profile and step == self.total_steps:
            sync(self.device)
            self.t2 = time.perf_counter()
            self.profiler.__exit__(None, None, None)

    def figures(self, tokens_per_step: int) -> dict[str, Any]:
        seconds = self.t1 - self.t0
        return {
            "warmup_seconds": round(self.t0 - self.start, 1),
            "step_seconds": seconds / self.timed,
            "tokens_per_s": tokens_per_step * self.timed / seconds,
        }


def profile_report(clock: StepClock, device: torch.device, rows: int = 25) -> dict[str, Any]:
    """The profiler's table (top `rows` by self device time) and device time by kernel kind."""
    if clock.profiler is None:
        return {}
    averages = clock.profiler.key_averages()
    on_device = device.type == "cuda"
    sort_by = "self_device_time_total" if on_device else "self_cpu_time_total"
    table = averages.table(sort_by=sort_by, row_limit=rows, max_name_column_width=70)
    wall_us = (clock.t2 - clock.t1) * 1e6
    kinds: dict[str, float] = {}
    attention: dict[str, float] = {}  # which attention kernels ran: flash, memory-efficient...
    if on_device:
        for event in averages:
            if event.device_type != torch.autograd.DeviceType.CUDA:
                continue  # host-side operators: their device time is their kernels'
            kind = kernel_kind(event.key)
            kinds[kind] = kinds.get(kind, 0.0) + event.self_device_time_total
            if kind == "attention":
                attention[event.key[:100]] = event.self_device_time_total
    busy = sum(kinds.values())
    breakdown = {k: round(v / wall_us, 4) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}
    if on_device:
        breakdown["idle"] = round(max(0.0, 1 - busy / wall_us), 4)
    top_attention = sorted(attention, key=lambda k: -attention[k])[:3]
    return {
        "table": table, "share_of_wall_time": breakdown, "profiled_steps": clock.profile,
        "attention_kernels": top_attention,
    }  # fmt: skip


_KERNEL_KINDS = [
    ("attention", re.compile(r"flash|fmha|attention|sdpa", re.I)),
    ("optimizer, gradient norm", re.compile(r"adam|multi_tensor|foreach", re.I)),
    ("matmul", re.compile(r"gemm|cutlass|xmma|nvjet|sm90_|sm80_|cublas|matmul", re.I)),
    ("fused elementwise (triton)", re.compile(r"^triton|triton_", re.I)),
    ("copy", re.compile(r"memcpy|memset|copy", re.I)),
    ("cross-entropy / softmax", re.compile(r"softmax|nll|cross_entropy|log_softmax", re.I)),
    ("eager elementwise / reduce", re.compile(r"elementwise|vectorized|reduce|unrolled", re.I)),
]


def kernel_kind(name: str) -> str:
    """A coarse class of a CUDA kernel, from its name."""
    return next((kind for kind, pattern in _KERNEL_KINDS if pattern.search(name)), "other")


# ------------------------------------------------------------------------------ sides
def build_ours(preset: str, workdir: str, device: torch.device) -> torch.nn.Module:
    """The preset's model from the shipped templates, initialised with seed 0."""
    from forgather.config import ConfigEnvironment
    from forgather.project.workspace import templatelib_searchdirs

    cfg = ConfigEnvironment(templatelib_searchdirs()).load(
        f"{preset}.yaml", output_dir=os.path.join(workdir, preset)
    )
    torch.manual_seed(0)
    return cfg.build("model", device=str(device), attn_implementation="sdpa")


def build_hf(ours: Any, device: torch.device) -> torch.nn.Module:
    """transformers' `LlamaForCausalLM` with the hyperparameters of our model's config."""
    from transformers import LlamaConfig, LlamaForCausalLM

    c = ours
    config = LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size,
        intermediate_size=c.intermediate_size, num_hidden_layers=c.num_hidden_layers,
        num_attention_heads=c.num_attention_heads, num_key_value_heads=c.num_key_value_heads,
        head_dim=c.head_dim, max_position_embeddings=c.max_position_embeddings,
        rms_norm_eps=c.rms_norm_eps, initializer_range=c.initializer_range,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
        tie_word_embeddings=c.tie_word_embeddings, attn_implementation="sdpa",
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):
        return LlamaForCausalLM(config)


def run_ours(
    opts: argparse.Namespace, device: torch.device, batch: int, configs: list
) -> dict[str, Any]:
    """Train the preset with Forgather's Trainer; returns its figures, appends its config."""
    from forgather.ml.trainer import Trainer, TrainerCallback, TrainingArguments

    workdir = tempfile.mkdtemp(prefix="train_mfu_")
    try:
        model = build_ours(opts.preset, workdir, device)
        config = model.config
        configs.append(config)
        clock = StepClock(device, opts.warmup, opts.steps, opts.profile_steps)

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                clock.step_done(state.global_step)

        args = TrainingArguments(
            output_dir=workdir, max_steps=clock.total_steps, per_device_train_batch_size=batch,
            learning_rate=1e-4, lr_scheduler_type="constant", logging_steps=clock.total_steps,
            save_strategy="no", report_to="none", disable_tqdm=True, bf16=True,
            torch_compile=opts.compile, device=str(device), dataloader_num_workers=0, seed=0,
            dataloader_drop_last=True,
        )  # fmt: skip
        data = RandomBlocks(config.vocab_size, opts.seq_len, count=max(4 * batch, 16))
        probe = data.batches(batch, device)
        before = probe_loss(model, probe, device)
        trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[Clock()])
        trainer.train()
        # One log entry (logging_steps = every step of the run): the mean loss of the run.
        losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        result = side_result(model, clock, device, batch, opts.seq_len, losses[-1])
        result["probe_loss"] = [round(before, 4), round(probe_loss(model, probe, device), 4)]
        del trainer, model
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_hf(opts: argparse.Namespace, device: torch.device, batch: int, config) -> dict[str, Any]:
    """Train transformers' LlamaForCausalLM in a plain loop; returns its figures."""
    model = build_hf(config, device)
    model.train()
    data = RandomBlocks(config.vocab_size, opts.seq_len, count=max(4 * batch, 16))
    probe = data.batches(batch, device)
    before = probe_loss(model, probe, device)
    if opts.compile:
        model.compile()
    clock = StepClock(device, opts.warmup, opts.steps, opts.profile_steps)
    loader = torch.utils.data.DataLoader(
        data, batch_size=batch, shuffle=True, drop_last=True,
        generator=torch.Generator().manual_seed(0), pin_memory=device.type == "cuda",
    )  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0, fused=True)
    batches = iter(())
    loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per step
    for step in range(1, clock.total_steps + 1):
        sample = next(batches, None)
        if sample is None:
            batches = iter(loader)
            sample = next(batches)
        sample = {k: v.to(device, non_blocking=True) for k, v in sample.items()}
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss = model(**sample).loss
        loss.backward()
        loss_sum += loss.detach()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.step_done(step)
    result = side_result(
        model, clock, device, batch, opts.seq_len, float(loss_sum) / clock.total_steps
    )
    result["probe_loss"] = [round(before, 4), round(probe_loss(model, probe, device), 4)]
    del model, optimizer
    return result


def side_result(model, clock: StepClock, device, batch: int, seq_len: int, loss: float) -> dict:
    figures = clock.figures(batch * seq_len)
    figures.update(
        batch=batch,
        parameters=sum(p.numel() for p in model.parameters()),
        flops_per_token=flops_per_token(model, seq_len),
        mean_loss=round(loss, 4),  # over every step of the run, as the trainer logs it
        profile=profile_report(clock, device),
    )
    if device.type == "cuda":
        figures["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 1)
    return figures


def with_batch_fallback(
    name: str, run: Callable[[int], dict], batch: int, device: torch.device
) -> tuple[dict | None, int]:
    """Run `run(batch)`, halving the batch after each out-of-memory error."""
    while batch >= 1:
        failed = False
        try:
            return run(batch), batch
        except torch.OutOfMemoryError as error:
            print(f"{name}: out of memory at batch {batch}: {str(error).splitlines()[0]}")
            failed = True
        finally:
            release(device)
        if failed:
            batch //= 2
    return None, 0


def release(device: torch.device) -> None:
    """Forget compiled graphs and free the device memory of a finished side."""
    torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="llama_1b", help="a model template (llama_1b...)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, help="default: 8 on a GPU, 2 on a CPU")
    parser.add_argument("--seq-len", type=int, help="default: 2048 on a GPU, 128 on a CPU")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, help="untimed steps; default 8 compiled, else 2")
    parser.add_argument("--profile-steps", type=int, default=3, help="profiled steps after")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction,
                        help="torch.compile on both sides; default: on a GPU only")  # fmt: skip
    parser.add_argument("--only", choices=["ours", "hf"])
    parser.add_argument("--out", help="directory for results.json and the profile tables")
    opts = parser.parse_args(argv)
    on_gpu = opts.device.startswith("cuda")
    opts.batch_size = opts.batch_size or (8 if on_gpu else 2)
    opts.seq_len = opts.seq_len or (2048 if on_gpu else 128)
    opts.compile = on_gpu if opts.compile is None else opts.compile
    opts.warmup = opts.warmup if opts.warmup is not None else (8 if opts.compile else 2)
    if opts.warmup < 1 or opts.steps < 1:
        parser.error("--warmup and --steps must be >= 1 (the first step is never timed)")
    return opts


def main(argv: list[str] | None = None) -> dict[str, Any]:
    opts = parse_args(argv)
    device = torch.device(opts.device)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(device)
    out = Path(opts.out) if opts.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    peak = measured_peak(device)
    spec = spec_peak(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}")
    print(f"bf16 matmul peak, measured: {peak / 1e12:,.3g} TFLOP/s"
          + (f" (datasheet {spec / 1e12:,.0f})" if spec else ""))  # fmt: skip
    print(f"preset {opts.preset}, batch {opts.batch_size}x{opts.seq_len}, "
          f"{opts.warmup} warm-up + {opts.steps} timed + {opts.profile_steps} profiled steps, "
          f"bf16 autocast, torch.compile {'on' if opts.compile else 'off'}", flush=True)  # fmt: skip
    results: dict[str, Any] = {
        "device": name, "torch": torch.__version__, "preset": opts.preset,
        "seq_len": opts.seq_len, "compile": opts.compile, "warmup": opts.warmup,
        "steps": opts.steps, "measured_peak_flops": peak, "spec_peak_flops": spec, "sides": {},
    }  # fmt: skip
    batch = opts.batch_size
    configs: list = []  # the model config our side built, for the reference
    if opts.only != "hf":
        ours, batch = with_batch_fallback(
            "forgather", lambda b: run_ours(opts, device, b, configs), batch, device
        )
        results["sides"]["forgather"] = ours
        report_side("forgather", ours, peak, spec, out, results)
    if opts.only != "ours" and batch:
        config = configs[-1] if configs else config_of(opts.preset)
        hf, batch = with_batch_fallback(
            "hf", lambda b: run_hf(opts, device, b, config), batch, device
        )
        results["sides"]["hf"] = hf
        report_side("hf", hf, peak, spec, out, results)
    sides = results["sides"]
    if sides.get("forgather") and sides.get("hf"):
        ratio = sides["forgather"]["tokens_per_s"] / sides["hf"]["tokens_per_s"]
        results["ratio_forgather_over_hf"] = ratio
        print(f"\ntokens/s ratio, forgather / Hugging Face Llama: {ratio:.3f}x")
    if out:
        (out / "results.json").write_text(json.dumps(strip_tables(results), indent=2))
    return results


def config_of(preset: str):
    """Our preset's config (a `PretrainedConfig`), built on the meta device."""
    workdir = tempfile.mkdtemp(prefix="train_mfu_")
    try:
        return build_ours(preset, workdir, torch.device("meta")).config
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def report_side(which: str, r: dict | None, peak: float, spec: float | None, out, results) -> None:
    if r is None:
        print(f"{which}: no batch size fitted in memory")
        return
    r["mfu_measured_peak"] = r["tokens_per_s"] * r["flops_per_token"] / peak
    if spec:
        r["mfu_spec_peak"] = r["tokens_per_s"] * r["flops_per_token"] / spec
    mfu = f"MFU {r['mfu_measured_peak']:.1%} of measured peak"
    if spec:
        mfu += f", {r['mfu_spec_peak']:.1%} of datasheet"
    memory = f", peak memory {r['peak_memory_gib']} GiB" if "peak_memory_gib" in r else ""
    print(f"\n{which}: {r['parameters'] / 1e6:,.1f}M parameters, batch {r['batch']}: "
          f"{r['tokens_per_s']:,.0f} tokens/s ({r['step_seconds'] * 1e3:,.1f} ms/step), {mfu}; "
          f"warm-up {r['warmup_seconds']} s{memory}; mean loss {r['mean_loss']}")  # fmt: skip
    before, after = r["probe_loss"]
    if after < before:
        print(f"  mean loss over the blocks: {before} before the run, {after} after")
    else:
        print(f"  WARNING: the mean loss over the blocks did not fall ({before} -> {after}): "
              "this side did not train, and its figures are void")  # fmt: skip
    profile = r.get("profile") or {}
    if profile.get("share_of_wall_time"):
        shares = ", ".join(f"{k} {v:.1%}" for k, v in profile["share_of_wall_time"].items())
        print(f"  device time by kernel kind (share of wall time): {shares}")
        print(f"  attention kernels: {profile['attention_kernels']}")
    if out and profile.get("table"):
        (out / f"profile_{which}.txt").write_text(profile["table"])
    if out:  # after each side, so a later failure keeps what was measured
        (out / "results.json").write_text(json.dumps(strip_tables(results), indent=2))


def strip_tables(results: dict) -> dict:
    """`results` without the profiler tables (written to their own files)."""
    copy = json.loads(json.dumps(results, default=str))
    for side in copy["sides"].values():
        if side and side.get("profile"):
            side["profile"].pop("table", None)
    return copy


if __name__ == "__main__":
    main()
