"""What ``forgather model construct`` and ``forgather model test`` print.

``describe_model`` reports a built model: its config, tokenizer, module tree
and parameter counts (it works on a model built on the ``meta`` device, so a
7B definition can be inspected without the memory). ``run_model_test`` takes
a few optimizer steps on random tokens and reports losses and shapes, the
quickest check that a new definition trains at all.

Decision a reader may question: both take a built model, not a config; the
CLI builds the config's ``model`` target (with ``device``/``dtype``) and
passes the result, so this module stays free of the config language.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import torch
from torch import nn

from forgather.ml.model_conversion.structure import count_parameters, format_count, model_structure


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total, trainable and embedding parameter counts (tied weights once)."""
    unique = {id(p): p for p in model.parameters()}.values()
    embedding_ids = {
        id(p) for m in model.modules() if isinstance(m, nn.Embedding) for p in m.parameters()
    }
    return {
        "total": sum(p.numel() for p in unique),
        "trainable": sum(p.numel() for p in unique if p.requires_grad),
        "embedding": sum(p.numel() for p in unique if id(p) in embedding_ids),
    }


def describe_model(model: nn.Module, tokenizer=None, max_depth: int = 4) -> str:
    """A report of the model's config, tokenizer, module tree and sizes.

    Args:
        model: A built model (any device, including ``meta``).
        tokenizer: The config's tokenizer, if it has one.
        max_depth: Depth of the module tree.

    Returns:
        Multi-line text.
    """
    sections = []
    config = getattr(model, "config", None)
    if config is not None:
        sections.append(
            "Config:\n" + json.dumps(config.to_diff_dict(), indent=2, sort_keys=True, default=str)
        )
    if tokenizer is not None:
        special = {k: v for k, v in tokenizer.special_tokens_map.items()}
        sections.append(
            f"Tokenizer: {type(tokenizer).__name__}, vocabulary {len(tokenizer)}, "
            f"special tokens {special}"
        )
    sections.append("Modules:\n" + model_structure(model, max_depth))
    counts = parameter_counts(model)
    first = next(model.parameters(), None)
    where = f"{first.device}, {first.dtype}" if first is not None else "no parameters"
    sections.append(
        f"Parameters: {format_count(counts['total'])} total ({counts['total']:,}), "
        f"{format_count(counts['total'] - counts['embedding'])} excluding embeddings, "
        f"{format_count(counts['trainable'])} trainable; {where}"
    )
    return "\n\n".join(sections)


def run_model_test(
    model: nn.Module,
    steps: int = 3,
    batch_size: int = 2,
    seq_len: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    print_fn: Callable[[str], None] = print,
) -> list[float]:
    """Train ``model`` for a few steps on random tokens, printing loss and shapes.

    The model is used on its own device and dtype; build it with the ones to
    test. Random tokens have no structure, so the loss should start near
    ``ln(vocab_size)`` and fall only by memorising the batch.

    Args:
        model: A causal LM taking ``input_ids`` and ``labels``.
        steps: Optimizer steps (AdamW), all on the same batch.
        batch_size: Rows per batch.
        seq_len: Tokens per row.
        lr: Learning rate.
        seed: Seed of the random tokens.
        print_fn: Where lines go.

    Returns:
        The loss of each step.
    """
    first = next(model.parameters())
    vocab_size = model.config.vocab_size
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=generator).to(
        first.device
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    print_fn(f"device {first.device}, dtype {first.dtype}, {count_parameters(model):,} parameters")
    print_fn(
        f"input_ids {tuple(input_ids.shape)}; ln(vocab_size) = {torch.log(torch.tensor(vocab_size)):.3f}"
    )
    losses = []
    for step in range(1, steps + 1):
        start = time.perf_counter()
        output = model(input_ids=input_ids, labels=input_ids)
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - start
        losses.append(output.loss.item())
        print_fn(
            f"step {step}: loss {losses[-1]:.4f}, logits {tuple(output.logits.shape)}, "
            f"{batch_size * seq_len / elapsed:,.0f} tokens/s"
        )
    return losses
