"""What a training config feeds its model: blocks as the collator hands them over,
with document boundaries and the tokens that carry loss.

``blocks_view(dataset, collator, tokenizer)`` collates the first examples one at a
time, exactly as the trainer's data loader would, and prints per block: its length,
how many documents it holds (a document starts wherever ``position_ids`` restart at
0, which is where Forgather's models stop attention), the tokens with a label and
the padding; then each document piece decoded, with the trained spans marked when
only part of it is trained (chat data). A summary over more blocks follows.

Decision a reader may question: boundaries are counted from the collated
``position_ids``, not from the dataset's own bookkeeping. That is the one signal the
model receives, so the view shows what the model will do whatever dataset class
produced the block.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence

import torch

from forgather.ml.data.collator import IGNORE_INDEX

TRAINED_OPEN, TRAINED_CLOSE = "⟦", "⟧"  # around decoded text that carries loss


def _examples(dataset, n: int) -> list:
    try:
        size = len(dataset)
    except TypeError:
        return list(itertools.islice(iter(dataset), n))
    return [dataset[i] for i in range(min(n, size))]


def _runs(flags: Sequence[bool]) -> list[tuple[int, int, bool]]:
    """Maximal runs of equal flags as ``(start, end, flag)``."""
    runs: list[tuple[int, int, bool]] = []
    start = 0
    for i in range(1, len(flags) + 1):
        if i == len(flags) or flags[i] != flags[start]:
            runs.append((start, i, bool(flags[start])))
            start = i
    return runs


def _clip(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[:max_chars] + f" [... {len(text) - max_chars} more chars]"


def block_stats(batch: Mapping[str, torch.Tensor]) -> list[dict]:
    """Per row of a collated batch: ``length`` (real tokens), ``documents`` (starts of
    documents: position 0 on a real token), ``loss_tokens`` (labels != -100) and
    ``padding``."""
    mask = batch["attention_mask"].bool()
    starts = (batch["position_ids"] == 0) & mask
    trained = batch["labels"] != IGNORE_INDEX
    return [
        {
            "length": int(mask[r].sum()),
            "documents": int(starts[r].sum()),
            "loss_tokens": int(trained[r].sum()),
            "padding": int((~mask[r]).sum()),
        }
        for r in range(mask.shape[0])
    ]


def format_block(row: Mapping[str, torch.Tensor], tokenizer, max_chars: int = 600) -> list[str]:
    """Decode one collated row document by document, marking trained spans."""
    mask = row["attention_mask"].bool()
    ids = row["input_ids"][mask].tolist()
    positions = row["position_ids"][mask].tolist()
    # labels[t] is the target at t (the model shifts): token t carries loss.
    trained = (row["labels"][mask] != IGNORE_INDEX).tolist()
    starts = [t for t, p in enumerate(positions) if p == 0] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)  # the block opens inside a document
    out = []
    for k, (lo, hi) in enumerate(zip(starts, starts[1:] + [len(ids)], strict=True)):
        n_trained = sum(trained[lo:hi])
        continues = k == 0 and positions[0] != 0
        out.append(
            f"---- document {k + 1}{' (continued)' if continues else ''}: tokens {lo}:{hi}, "
            f"{n_trained} with loss ----"
        )
        if 0 < n_trained < hi - lo - 1:  # partly trained (the first token never is)
            text = "".join(
                (TRAINED_OPEN + tokenizer.decode(ids[a:b]) + TRAINED_CLOSE)
                if flag
                else tokenizer.decode(ids[a:b])
                for a, b, flag in _runs(trained[lo:hi])
                for a, b in [(a + lo, b + lo)]
            )
        else:
            text = tokenizer.decode(ids[lo:hi])
        out.append(_clip(text, max_chars))
    return out


def blocks_view(
    dataset,
    collator: Callable[[list], Mapping[str, torch.Tensor]],
    tokenizer,
    num_blocks: int = 2,
    summary_blocks: int = 200,
    max_chars: int = 600,
    name: str = "train",
) -> str:
    """The first blocks of a training dataset as the model receives them, and counts.

    Args:
        dataset: a map-style or iterable dataset of ``{"input_ids", ...}`` examples
            (``PackedDataset``, ``ChatDataset``, ``DocumentDataset``, any other).
        collator: the config's data collator (returns ``input_ids``,
            ``attention_mask``, ``position_ids``, ``labels``).
        tokenizer: decodes ids.
        num_blocks: blocks shown decoded.
        summary_blocks: blocks counted for the summary (the first ones).
        max_chars: clip each decoded document piece to this many characters.
        name: the split's name, for the header.

    Returns:
        Printable text.
    """
    try:
        size: int | None = len(dataset)
    except TypeError:
        size = None
    head = f"# Blocks of {name}: {type(dataset).__name__}"
    block_size = getattr(dataset, "block_size", None)
    if block_size is not None:
        head += f" (block_size={block_size})"
    head += f", {size:,} blocks" if size is not None else ""
    out = [head]
    examples = _examples(dataset, max(num_blocks, summary_blocks))
    if not examples:
        return "\n".join(out + ["(no blocks)"])
    stats = []
    for i, example in enumerate(examples):
        batch = collator([example])
        row_stats = block_stats(batch)[0]
        stats.append(row_stats)
        if i < num_blocks:
            out.append(
                f"=== block {i}: {row_stats['length']} tokens, {row_stats['documents']} "
                f"document start(s), {row_stats['loss_tokens']} with loss, "
                f"{row_stats['padding']} padding ==="
            )
            out.extend(format_block({k: v[0] for k, v in batch.items()}, tokenizer, max_chars))
    n = len(stats)
    tokens = sum(s["length"] for s in stats)
    docs = [s["documents"] for s in stats]
    loss = sum(s["loss_tokens"] for s in stats)
    out.append(f"# Boundaries over the first {n} block(s)")
    out.append(
        f"document starts per block: mean {sum(docs) / n:.2f}, min {min(docs)}, max {max(docs)}; "
        f"blocks with a boundary inside: {sum(d > 1 for d in docs)}"
    )
    out.append(
        f"tokens: {tokens:,} real, {loss:,} with loss ({loss / max(tokens, 1):.1%}), "
        f"mean length {tokens / n:.1f}"
    )
    out.append(
        "attention stops at each document start (position_ids restart at 0); in a partly "
        f"trained document the text with loss is shown between {TRAINED_OPEN} {TRAINED_CLOSE}"
    )
    return "\n".join(line.rstrip() for line in out)
