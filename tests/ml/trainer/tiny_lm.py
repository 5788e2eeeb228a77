"""A tiny causal LM, real text tokens and a training script, for the trainer tests.

The model is an embedding, a GRU with dropout and a head tied to the embedding
(so checkpoints must handle tied weights and the RNG state). The data are the
ASCII bytes of a stdlib source file cut into fixed-length rows.

Run as a script it trains in its own process, which the resume, signal and
crash tests need:

    python tiny_lm.py OUTPUT_DIR --max-steps 12 [--stop-at 5] [--resume] ...

It prints "STEP k" after every optimizer step (flushed) so a parent can time a
signal, and writes its final `log_history` to OUTPUT_DIR/history-<run>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import textwrap
import time

import torch
from torch import nn

from forgather.ml.optim import AdamW, cosine_with_warmup
from forgather.ml.trainer import Trainer, TrainerCallback, TrainingArguments

VOCAB = 128  # ASCII


class TinyLM(nn.Module):
    """Embedding -> GRU -> dropout -> tied head; HF-style `forward(input_ids, labels)`."""

    def __init__(self, dim: int = 32, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(dim, VOCAB, bias=False)
        self.head.weight = self.embed.weight  # tied

    def forward(self, input_ids, labels=None, position_ids=None, attention_mask=None):
        hidden, _ = self.rnn(self.embed(input_ids))  # (B, T, dim)
        logits = self.head(self.drop(hidden))  # (B, T, V)
        out = {"logits": logits}
        if labels is not None:
            # Predict token t+1 from positions <= t.
            out["loss"] = nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1)
            )
        return out


def token_rows(rows: int = 64, seq_len: int = 16, offset: int = 0) -> list[dict]:
    """`rows` samples of `seq_len` ASCII byte tokens from textwrap's source."""
    with open(textwrap.__file__, "rb") as f:
        data = f.read()
    tokens = torch.tensor([b for b in data if b < VOCAB], dtype=torch.long)
    rows_of_tokens = tokens[offset * seq_len : (offset + rows) * seq_len].view(rows, seq_len)
    return [{"input_ids": row} for row in rows_of_tokens]


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    input_ids = torch.stack([s["input_ids"] for s in samples])  # (B, T)
    return {"input_ids": input_ids, "labels": input_ids.clone()}


def make_model(seed: int = 0) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM()


def make_trainer(output_dir: str, run: str = "run", callbacks=(), **overrides) -> Trainer:
    """A trainer over 64 rows, batch 4, accumulation 2: 8 optimizer steps per epoch."""
    settings = dict(
        output_dir=output_dir, logging_dir=os.path.join(output_dir, "runs", run),
        per_device_train_batch_size=4, gradient_accumulation_steps=2, max_steps=12,
        logging_steps=1, save_steps=4, eval_strategy="steps", eval_steps=3,
        max_eval_steps=2, per_device_eval_batch_size=8, report_to=["json"],
        disable_tqdm=True, seed=7,
    )  # fmt: skip
    settings.update(overrides)
    args = TrainingArguments(**settings)
    max_steps = args.max_steps
    return Trainer(
        model=make_model(),
        args=args,
        train_dataset=token_rows(64),
        eval_dataset=token_rows(16, offset=64),
        data_collator=collate,
        callbacks=list(callbacks),
        optimizer_factory=lambda params: AdamW(params, lr=3e-3, weight_decay=0.01),
        lr_scheduler_factory=lambda opt: cosine_with_warmup(opt, 2, max_steps, 0.1),
    )


def step_losses(history: list[dict]) -> dict[int, float]:
    """{step: training loss} from a log history."""
    return {e["step"]: e["loss"] for e in history if "loss" in e}


class _Report(TrainerCallback):
    """Prints steps for the parent process; optional stop, delay and save faults."""

    def __init__(self, stop_at: int | None, delay: float) -> None:
        self.stop_at, self.delay = stop_at, delay

    def on_step_end(self, args, state, control, **kwargs):
        print(f"STEP {state.global_step}", flush=True)
        time.sleep(self.delay)
        if state.global_step == self.stop_at:
            control.should_save = control.should_training_stop = True


class FaultyAdamW(AdamW):
    """AdamW whose `state_dict()` (called while a checkpoint is being written) fails."""

    fail_at_step: int = -1
    mode: str = "raise"  # or "kill": SIGKILL this process, as a crash or OOM would

    def state_dict(self):
        step = int(next(iter(self.state.values()))["step"]) if self.state else 0
        if step == self.fail_at_step:
            if self.mode == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"injected failure while saving step {step}")
        return super().state_dict()


def run(
    output_dir: str,
    run: str = "run",
    max_steps: int = 12,
    stop_at: int | None = None,
    resume: bool = False,
    delay: float = 0.0,
    kill_in_save_at: int = -1,
) -> dict:
    """Train like the script does; return {"log_history", "metrics"} (also written to a file)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float summation order in every process
    try:
        trainer = make_trainer(
            output_dir, run, [_Report(stop_at, delay)], max_steps=max_steps,
            resume_from_checkpoint=resume,
        )  # fmt: skip
        if kill_in_save_at >= 0:
            FaultyAdamW.fail_at_step, FaultyAdamW.mode = kill_in_save_at, "kill"
            trainer.optimizer_factory = lambda p: FaultyAdamW(p, lr=3e-3, weight_decay=0.01)
        output = trainer.train()
    finally:
        torch.set_num_threads(threads)
    result = {"log_history": trainer.state.log_history, "metrics": output.metrics}
    with open(os.path.join(output_dir, f"history-{run}.json"), "w") as f:
        json.dump(result, f)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("output_dir")
    parser.add_argument("--run", default="run")
    parser.add_argument("--max-steps", type=int, default=12)
    parser.add_argument("--stop-at", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--kill-in-save-at", type=int, default=-1)
    a = parser.parse_args()
    run(a.output_dir, a.run, a.max_steps, a.stop_at, a.resume, a.delay, a.kill_in_save_at)


if __name__ == "__main__":
    main()
