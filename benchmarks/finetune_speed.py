"""LoRA fine-tuning throughput: Forgather next to transformers.Trainer with peft.

Both sides fine-tune the same small Hugging Face Llama (written here with
`save_pretrained`: hidden 256, FFN 768, 8 heads / 4 KV heads, 4 layers, the
tokenizer's vocabulary; random weights, seed 0) with LoRA (rank 16, alpha 32,
every linear layer but the head) on the same data: the shipped chat
conversations (examples/data/chat), rendered with the chat template, packed
into 256-token blocks by our chat pipeline, with loss on the assistant's
tokens. Same batch, optimizer (AdamW, constant learning rate) and steps, each
side in its own process.

- forgather: `forgather.ml.finetune.load_pretrained(lora=...)` (adapters
  injected in place; packed conversations kept apart through `position_ids`)
  and `forgather.ml.trainer.Trainer`, as `finetune.yaml` builds them;
- transformers: `AutoModelForCausalLM.from_pretrained` + `peft.get_peft_model`
  + `transformers.Trainer` (the collator's all-ones `attention_mask`: a plain
  causal mask over the whole block).

Prints tokens/s (from the median step time after warm-up; best of `--repeats`
interleaved runs), the ratio, and the model FLOP utilisation against the
matmul peak measured in the same run. FLOPs per token: forward 2 * N_all
(every weight, frozen ones too) + backward 2 * N_all (activation gradients
through every layer) + 2 * N_lora (adapter weight gradients), plus attention
12 * layers * seq * hidden; the input embedding is excluded.

    .venv/bin/python benchmarks/finetune_speed.py                 # bf16 autocast, 8x256, 40 steps
    .venv/bin/python benchmarks/finetune_speed.py --no-bf16 --steps 30
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from train_speed import matmul_peak  # noqa: E402  (a sibling script)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CHAT = Path(__file__).resolve().parents[1] / "examples" / "data" / "chat" / "conversations.jsonl"
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear"}


def write_base_model(directory: str) -> None:
    """The small Llama and a BPE tokenizer trained on the chat text, saved with save_pretrained."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    from forgather.ml.data import train_tokenizer

    texts = [
        m["content"]
        for line in CHAT.read_text().splitlines()
        for m in json.loads(line)["messages"]
    ]  # fmt: skip
    tokenizer = train_tokenizer(texts, vocab_size=2048)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=256, intermediate_size=768,
        num_attention_heads=8, num_key_value_heads=4, num_hidden_layers=4,
        max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def chat_data(model_dir: str, seq_len: int):
    """Packed chat blocks and the collator (what chat_dataset.yaml builds)."""
    from forgather.ml.data import (
        CausalLMCollator,
        ChatDataset,
        load_chat_splits,
        open_chat,
        pad_token_id,
        with_chat_template,
    )
    from forgather.ml.finetune import load_tokenizer

    tokenizer = with_chat_template(load_tokenizer(model_dir))
    splits = load_chat_splits(open_chat(str(CHAT)), tokenizer, validation_fraction=0.1)
    train = ChatDataset(splits["train"], block_size=seq_len, packed=True, shuffle_seed=0)
    return train, CausalLMCollator(pad_token_id(tokenizer))


def flops_per_token(model, seq_len: int) -> float:
    config = model.config
    embedding = model.get_input_embeddings().weight.numel()
    everything = sum(p.numel() for p in model.parameters()) - embedding
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    attention = 12 * config.num_hidden_layers * seq_len * config.hidden_size
    return 4 * everything + 2 * trainable + attention


def run_child(which: str, model_dir: str, opts: argparse.Namespace) -> dict:
    """Fine-tune with one side in this process; return its figures."""
    import torch

    torch.manual_seed(0)
    workdir = tempfile.mkdtemp(prefix=f"finetune_speed_{which}_")
    train, collator = chat_data(model_dir, opts.seq_len)
    step_times: list[float] = []
    common = dict(
        max_steps=opts.steps, per_device_train_batch_size=opts.batch_size,
        learning_rate=1e-3, lr_scheduler_type="constant", logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True, bf16=opts.bf16,
        use_cpu=True, dataloader_num_workers=0, seed=0, weight_decay=0.0,
    )  # fmt: skip
    if which == "forgather":
        from forgather.ml.finetune import load_pretrained
        from forgather.ml.trainer import Trainer, TrainerCallback, TrainingArguments

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                step_times.append(time.perf_counter())

        model = load_pretrained(model_dir, lora=LORA)
        args = TrainingArguments(output_dir=workdir, **common)
        trainer = Trainer(model=model, args=args, train_dataset=train, data_collator=collator,
                          callbacks=[Clock()])  # fmt: skip
    else:
        import warnings

        import peft
        import transformers

        class Clock(transformers.TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                step_times.append(time.perf_counter())

        base = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft 0.21 on transformers 5
            model = peft.get_peft_model(base, peft.LoraConfig(task_type="CAUSAL_LM", **LORA))
        args = transformers.TrainingArguments(output_dir=workdir, optim="adamw_torch", **common)
        trainer = transformers.Trainer(model=model, args=args, train_dataset=train,
                                       data_collator=collator, callbacks=[Clock()])  # fmt: skip
    trainer.train()
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    timed = step_times[opts.warmup :]
    # Median step time: robust to other processes stealing the (shared) cores for a while.
    step_seconds = statistics.median(b - a for a, b in zip(timed, timed[1:], strict=False))
    return {
        "tokens_per_s": opts.batch_size * opts.seq_len / step_seconds,
        "flops_per_token": flops_per_token(model, opts.seq_len),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5, help="steps not timed")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--repeats", type=int, default=2, help="runs per side, best kept")
    parser.add_argument("--child", choices=["forgather", "transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.steps <= opts.warmup + 1:
        parser.error("--steps must exceed --warmup + 1")
    if opts.child:
        print(json.dumps(run_child(opts.child, opts.model_dir, opts)))
        return

    precision = "bfloat16" if opts.bf16 else "float32"
    peak = matmul_peak(precision)
    print(f"matmul peak ({precision}, 2048^2): {peak:,.0f} GFLOP/s")
    print(f"LoRA r={LORA['r']} on every linear layer; batch {opts.batch_size}x{opts.seq_len}, "
          f"{opts.steps} steps ({opts.warmup} untimed), bf16 autocast "
          f"{'on' if opts.bf16 else 'off'}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="finetune_speed_model_") as model_dir:
        write_base_model(model_dir)
        child_argv = [
            *("--steps", str(opts.steps), "--warmup", str(opts.warmup)),
            *("--batch-size", str(opts.batch_size), "--seq-len", str(opts.seq_len)),
            "--bf16" if opts.bf16 else "--no-bf16", "--model-dir", model_dir,
        ]  # fmt: skip
        results: dict[str, dict] = {}
        # Interleaved repeats, best kept: the machine's other load changes over minutes.
        for _ in range(opts.repeats):
            for which in ["forgather", "transformers"]:
                proc = subprocess.run(
                    [sys.executable, __file__, *child_argv, "--child", which],
                    capture_output=True, text=True, check=False,
                )  # fmt: skip
                if proc.returncode != 0:
                    sys.exit(f"{which} run failed:\n{proc.stderr}")
                result = json.loads(proc.stdout.strip().splitlines()[-1])
                if which not in results or result["tokens_per_s"] > results[which]["tokens_per_s"]:
                    results[which] = result

    print(f"\n{'side':<14}{'tokens/s':>10}{'trainable':>11}{'MFU':>8}{'loss first->last':>20}")
    for which, r in results.items():
        mfu = r["tokens_per_s"] * r["flops_per_token"] / (peak * 1e9)
        print(f"{which:<14}{r['tokens_per_s']:>10,.0f}{r['trainable']:>11,}{mfu:>8.1%}"
              f"{r['first_loss']:>11.3f} -> {r['last_loss']:.3f}")  # fmt: skip
    ours, theirs = results["forgather"], results["transformers"]
    print(f"\nspeed ratio (forgather / transformers+peft): "
          f"{ours['tokens_per_s'] / theirs['tokens_per_s']:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
