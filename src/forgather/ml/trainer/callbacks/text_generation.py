"""`TextGenerationCallback`: sample continuations of fixed prompts while training.

Reading what the model writes is the quickest sanity check of a language model
run. At each evaluation (or every `generation_steps` steps) the callback
generates a continuation of each prompt with `model.generate()`, prints it above
the progress bar, appends it to `<logging_dir>/generated_samples.txt` and keeps
it in `self.samples`. It needs a model with `generate` (any transformers
causal LM) and a tokenizer: its own, or the trainer's `processing_class`;
without them it does nothing.

The decision a reader may question: sampling runs inside `torch.random.fork_rng`
with its own seed, so adding or removing this callback does not change the
training run's random stream (a resumed run stays identical to an
uninterrupted one), and the same prompt at the same step gives the same text.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from tqdm.auto import tqdm

from .base import TrainerCallback

__all__ = ["TextGenerationCallback"]


class TextGenerationCallback(TrainerCallback):
    """Prints model samples for fixed prompts during training.

    Args:
        prompts: Texts to continue.
        tokenizer: Tokenizer with `__call__` and `decode`; None: the trainer's
            `processing_class`.
        generation_steps: Generate every this many steps; None: after each evaluation.
        max_new_tokens: Length of each continuation in tokens.
        do_sample: Sample (True) or decode greedily (False).
        temperature: Softmax temperature when sampling.
        top_k: Keep only the k most likely tokens when sampling; None: all.
        seed: Seed of the sampling generator.
        filename: File in `args.logging_dir` the samples are appended to.
    """

    def __init__(
        self,
        prompts: list[str],
        tokenizer: Any = None,
        generation_steps: int | None = None,
        max_new_tokens: int = 40,
        do_sample: bool = True,
        temperature: float = 0.8,
        top_k: int | None = None,
        seed: int = 0,
        filename: str = "generated_samples.txt",
    ) -> None:
        self.prompts = list(prompts)
        self.tokenizer = tokenizer
        self.generation_steps = generation_steps
        self.max_new_tokens = max_new_tokens
        self.do_sample = do_sample
        self.temperature = temperature
        self.top_k = top_k
        self.seed = seed
        self.filename = filename
        self.samples: list[dict[str, Any]] = []  # {"step", "prompt", "text"} per sample
        # More `generate()` options when sampling (top_p, repetition_penalty, ...).
        self.generation_kwargs: dict[str, Any] = {}

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.generation_steps and state.global_step % self.generation_steps == 0:
            self._generate(args, state, model, self.tokenizer or processing_class)

    def on_evaluate(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.generation_steps is None:
            self._generate(args, state, model, self.tokenizer or processing_class)

    @torch.no_grad()
    def _generate(self, args, state, model, tokenizer) -> None:
        if not state.is_world_process_zero or tokenizer is None or not hasattr(model, "generate"):
            return
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        sampling = {"do_sample": self.do_sample}
        if self.do_sample:
            sampling.update(temperature=self.temperature, top_k=self.top_k)
            sampling.update(self.generation_kwargs)
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id
        new = []
        forked = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=forked):
            torch.manual_seed(self.seed)
            for prompt in self.prompts:
                input_ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)  # (1, T)
                output = model.generate(
                    input_ids, attention_mask=torch.ones_like(input_ids),
                    max_new_tokens=self.max_new_tokens, pad_token_id=pad_id, **sampling,
                )  # fmt: skip
                text = tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True)
                new.append({"step": state.global_step, "prompt": prompt, "text": text})
        model.train(was_training)
        self.samples.extend(new)
        lines = [f"[step {s['step']}] {s['prompt']!r} -> {s['text']!r}" for s in new]
        for line in lines:
            tqdm.write(line)
        os.makedirs(args.logging_dir, exist_ok=True)
        with open(os.path.join(args.logging_dir, self.filename), "a", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
