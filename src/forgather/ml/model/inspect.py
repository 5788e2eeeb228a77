"""What ``forgather model construct`` and ``forgather model test`` print.

``describe_model`` reports a built model: its config, tokenizer, module tree
and parameter counts (it works on a model built on the ``meta`` device, so a
7B definition can be inspected without the memory). ``run_model_test`` takes
a few optimizer steps on random tokens (or a dataset's examples, packed or
not) and reports losses and shapes, the quickest check that a new definition
trains at all.

Decision a reader may question: both take a built model, not a config; the
CLI builds the config's ``model`` target (with ``device``/``dtype``) and
passes the result, so this module stays free of the config language.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterable, Iterator

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


def _rows(examples: Iterable, seq_len: int, packed: bool) -> Iterator[dict[str, list[int]]]:
    """Rows of at most ``seq_len`` tokens from examples with ``input_ids``.

    ``packed``: documents are concatenated into full rows, ``position_ids``
    restarting at 0 where each begins (a document longer than a row is cut
    into pieces that continue its positions); otherwise one example per row,
    truncated.
    """
    if not packed:
        for example in examples:
            ids = [int(t) for t in example["input_ids"]][:seq_len]
            if ids:
                yield {"input_ids": ids}
        return
    ids: list[int] = []
    positions: list[int] = []
    for example in examples:
        document = [int(t) for t in example["input_ids"]]
        offset = 0
        while offset < len(document):
            take = document[offset : offset + seq_len - len(ids)]
            ids += take
            positions += range(offset, offset + len(take))
            offset += len(take)
            if len(ids) == seq_len:
                yield {"input_ids": ids, "position_ids": positions}
                ids, positions = [], []
    if ids:
        yield {"input_ids": ids, "position_ids": positions}


def _random_examples(vocab_size: int, seq_len: int, seed: int, rows: int) -> Iterator[dict]:
    """The same ``rows`` random rows, again and again: each step sees one batch, so the
    loss can fall only by memorising it, and a falling loss shows the model trains."""
    generator = torch.Generator().manual_seed(seed)
    batch = [
        {"input_ids": torch.randint(0, vocab_size, (seq_len,), generator=generator).tolist()}
        for _ in range(rows)
    ]
    return itertools.cycle(batch)


def run_model_test(
    model: nn.Module,
    steps: int = 3,
    batch_size: int = 2,
    seq_len: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    print_fn: Callable[[str], None] = print,
    examples: Iterable | None = None,
    packed: bool = False,
    fuse_optimizer: bool = False,
) -> list[float]:
    """Train ``model`` for a few steps, printing loss and shapes.

    The model is used on its own device and dtype; build it with the ones to
    test. Without ``examples`` it trains on random tokens, which have no
    structure: the loss should start near ``ln(vocab_size)`` and fall only by
    memorising.

    Args:
        model: A causal LM taking ``input_ids``, ``labels`` (and ``position_ids``).
        steps: Optimizer steps (AdamW): each on the next batch of ``examples``, or
            all on the same batch of random tokens.
        batch_size: Rows per batch.
        seq_len: Most tokens per row.
        lr: Learning rate.
        seed: Seed of the random tokens.
        print_fn: Where lines go.
        examples: Examples with ``input_ids`` (a dataset's train split) instead of random tokens.
        packed: Pack several examples into each row (see :func:`_rows`).
        fuse_optimizer: Step each parameter's own optimizer from its
            gradient hook during backward, freeing the gradient at once.

    Returns:
        The loss of each step.

    Raises:
        ValueError: An example holds a token id the model's vocabulary lacks,
            or the examples run out before the first batch.
    """
    from forgather.ml.data.collator import CausalLMCollator

    first = next(model.parameters())
    vocab_size = model.config.vocab_size
    if examples is None:
        source = _random_examples(vocab_size, seq_len, seed, batch_size)
    else:
        source = examples
    rows = _rows(source, seq_len, packed)
    collate = CausalLMCollator(pad_token_id=0, max_length=seq_len)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    if fuse_optimizer:
        optimizers = {p: torch.optim.AdamW([p], lr=lr) for p in params}

        def step_now(param: torch.Tensor) -> None:
            optimizers[param].step()
            optimizers[param].zero_grad(set_to_none=True)

        hooks = [p.register_post_accumulate_grad_hook(step_now) for p in params]
    else:
        optimizer = torch.optim.AdamW(params, lr=lr)
    print_fn(f"device {first.device}, dtype {first.dtype}, {count_parameters(model):,} parameters")
    print_fn(
        f"ln(vocab_size) = {torch.log(torch.tensor(vocab_size)):.3f}; lr {lr}"
        + ("; optimizer fused with backward" if fuse_optimizer else "")
    )
    losses = []
    try:
        for step in range(1, steps + 1):
            batch_rows = list(itertools.islice(rows, batch_size))
            if not batch_rows:
                if step == 1:
                    raise ValueError("the dataset gave no examples")
                print_fn(f"the dataset ran out after {step - 1} steps")
                break
            top = max(max(r["input_ids"]) for r in batch_rows)
            if top >= vocab_size:
                raise ValueError(
                    f"the data holds token id {top}, but the model's vocabulary has {vocab_size} "
                    "tokens (a dataset made with another tokenizer?)"
                )
            batch = {k: v.to(first.device) for k, v in collate(batch_rows).items()}
            documents = int(((batch["position_ids"] == 0) & (batch["attention_mask"] == 1)).sum())
            start = time.perf_counter()
            loss, logits = _loss_and_logits(model(**batch))
            loss.backward()
            if not fuse_optimizer:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - start
            losses.append(loss.item())
            tokens = int(batch["attention_mask"].sum())
            # A generated model's chunked loss in training never builds the (B, T, V) logits.
            logits = "not kept" if logits is None else tuple(logits.shape)
            print_fn(
                f"step {step}: loss {losses[-1]:.4f}, input_ids {tuple(batch['input_ids'].shape)}, "
                f"{documents} documents, logits {logits}, "
                f"{tokens / elapsed:,.0f} tokens/s"
            )
    finally:
        if fuse_optimizer:
            for hook in hooks:
                hook.remove()
    return losses


def _loss_and_logits(output) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(loss, logits) of a model output: a ``ModelOutput``, or the ``(loss, logits, ...)``
    tuple the original Forgather's generated models return without ``return_dict``."""
    if isinstance(output, tuple):
        return output[0], output[1] if len(output) > 1 else None
    return output.loss, output.logits
