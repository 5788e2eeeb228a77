"""What ``forgather -t <dataset config> dataset`` shows: split sizes, decoded examples,
and a token-length histogram with summary statistics.

Every function takes built objects (datasets, a tokenizer) and returns text; the CLI
only builds the config and prints. Datasets from this package
(:class:`~forgather.ml.data.packing.PackedDataset`,
:class:`~forgather.ml.data.packing.DocumentDataset`, a bare
:class:`~forgather.ml.data.split.CorpusSplit`) report documents and tokens; any other
``torch`` dataset of ``{"input_ids": ...}`` items reports what its items show.

Decision a reader may question: packed examples are decoded segment by segment, with
a header line at each document boundary, instead of decoding the whole block at
once: the boundaries are exactly what a user inspecting packing wants to see, and
they are invisible in the decoded text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from forgather.ml.data.histogram import length_summary, write_histogram_svg
from forgather.ml.data.packing import DocumentDataset, PackedDataset
from forgather.ml.data.split import CorpusSplit


def corpus_split_of(dataset) -> CorpusSplit | None:
    """The corpus split behind a dataset of this package, else None."""
    if isinstance(dataset, CorpusSplit):
        return dataset
    split = getattr(dataset, "split", None)
    return split if isinstance(split, CorpusSplit) else None


def _document_name(split: CorpusSplit, doc_id: int) -> str:
    corpus = split.corpus
    name = corpus.file_names[int(corpus.file_ids[doc_id])]
    ordinal = int(corpus.ordinals[doc_id])
    return f"{name}#{ordinal}" if ordinal else name


def split_sizes(datasets: Mapping[str, object]) -> str:
    """A table: per split, documents, tokens and examples (blocks or pieces)."""
    rows = [("split", "documents", "tokens", "examples", "kind")]
    for name, ds in datasets.items():
        split = corpus_split_of(ds)
        docs = f"{len(split):,}" if split is not None else "-"
        tokens = f"{split.num_tokens:,}" if split is not None else "-"
        kind = type(ds).__name__
        if isinstance(ds, PackedDataset):
            kind += f" (block_size={ds.block_size})"
        elif isinstance(ds, DocumentDataset):
            kind += f" (max_length={ds.max_length})"
        rows.append((name, docs, tokens, f"{len(ds):,}", kind))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}  {r[4]}"
        for r in rows
    )


def _clip(text: str, max_chars: int) -> str:
    return (
        text
        if len(text) <= max_chars
        else text[:max_chars] + f"\n[... {len(text) - max_chars} more chars]"
    )


def format_examples(
    dataset, tokenizer, num_examples: int = 2, packed: bool = True, max_chars: int = 1500
) -> str:
    """Decode the first ``num_examples`` examples.

    Args:
        dataset: a dataset of this package, a ``CorpusSplit``, or any dataset of
            ``{"input_ids": ...}`` items.
        tokenizer: decodes ids (special tokens are shown, not skipped).
        num_examples: how many.
        packed: for a ``PackedDataset``, show blocks with document boundaries marked;
            False shows whole raw documents of the split instead.
        max_chars: clip each decoded text to this many characters.

    Returns:
        The examples, each under a header line.
    """
    split = corpus_split_of(dataset)
    out = []
    if isinstance(dataset, PackedDataset) and packed:
        for i in range(min(num_examples, len(dataset))):
            out.append(f"=== example {i}: block of {dataset.block_size} tokens ===")
            for doc, lo, hi in dataset.segments(i):
                total = int(split.corpus.lengths[doc])
                start = "document starts" if lo == 0 else "document continues"
                out.append(
                    f"---- {start}: {_document_name(split, doc)} [tokens {lo}:{hi} of {total}] ----"
                )
                out.append(
                    _clip(tokenizer.decode(split.corpus.document(doc)[lo:hi].tolist()), max_chars)
                )
    elif split is not None:
        for i in range(min(num_examples, len(split))):
            doc = int(split.doc_ids[i])
            ids = split.corpus.document(doc)
            out.append(f"=== document {i}: {_document_name(split, doc)} ({len(ids)} tokens) ===")
            out.append(_clip(tokenizer.decode(ids.tolist()), max_chars))
    else:
        for i in range(min(num_examples, len(dataset))):
            ids = [int(t) for t in dataset[i]["input_ids"]]
            out.append(f"=== example {i} ({len(ids)} tokens) ===")
            out.append(_clip(tokenizer.decode(ids), max_chars))
    return "\n".join(out)


def token_lengths(dataset) -> np.ndarray:
    """Tokens per document (or per example, for datasets of other kinds)."""
    split = corpus_split_of(dataset)
    if split is not None:
        return split.lengths
    return np.asarray([len(dataset[i]["input_ids"]) for i in range(len(dataset))], dtype=np.int64)


def unigram_entropy(dataset) -> float:
    """Entropy, in nats per token, of the split's empirical token distribution.

    A model that ignores context entirely can at best reach this cross-entropy, so a
    trained model's validation loss well below it shows it learned from context.
    Computed from every token of the split's documents (bos/eos included).
    """
    split = corpus_split_of(dataset)
    if split is None:
        raise TypeError(f"{type(dataset).__name__} does not expose its corpus split")
    corpus = split.corpus
    in_split = np.zeros(len(corpus), dtype=bool)
    in_split[split.doc_ids] = True
    counts = np.bincount(corpus.tokens[np.repeat(in_split, corpus.lengths)])
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def format_summary(summary: Mapping[str, float]) -> str:
    """One line: count, total, mean, min, median, p90, p99, max."""
    return (
        f"count={summary['count']:,} total={summary['total']:,} mean={summary['mean']:.1f} "
        f"min={summary['min']} p50={summary['p50']:.0f} p90={summary['p90']:.0f} "
        f"p99={summary['p99']:.0f} max={summary['max']}"
    )


def dataset_report(
    datasets: Mapping[str, object],
    tokenizer,
    num_examples: int = 2,
    packed: bool = True,
    histogram_dir: str | os.PathLike | None = None,
    max_chars: int = 1500,
) -> str:
    """The whole ``dataset`` command output: sizes, examples of the first split, and
    per-split length statistics with one histogram SVG per split.

    Args:
        datasets: split name -> dataset (``{"train": ..., "validation": ...}``).
        tokenizer: for decoding.
        num_examples: decoded examples shown from the first split (0 for none).
        packed: show packed blocks (True) or raw documents (False).
        histogram_dir: where ``<split>_token_lengths.svg`` files go; None draws none.
        max_chars: clip each decoded example.

    Returns:
        Text to print; it names the SVG files written.
    """
    sections = ["# Splits", split_sizes(datasets)]
    if num_examples and datasets:
        name, first = next(iter(datasets.items()))
        sections += [
            f"\n# Examples from {name}",
            format_examples(first, tokenizer, num_examples, packed, max_chars),
        ]
    sections.append("\n# Token lengths per document")
    for name, ds in datasets.items():
        lengths = token_lengths(ds)
        summary = length_summary(lengths)
        line = f"{name}: {format_summary(summary)}"
        if corpus_split_of(ds) is not None and summary["total"]:
            line += f"\n  unigram entropy: {unigram_entropy(ds):.3f} nats/token"
        if histogram_dir is not None and len(lengths):
            path = write_histogram_svg(
                lengths,
                Path(histogram_dir) / f"{name}_token_lengths.svg",
                title=f"{name}: {summary['count']:,} documents, median {summary['p50']:.0f} tokens",
            )
            line += f"\n  histogram: {path}"
        sections.append(line)
    return "\n".join(sections)
