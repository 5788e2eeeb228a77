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

import itertools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from forgather.ml.data.histogram import length_summary, write_histogram_svg
from forgather.ml.data.packing import DocumentDataset, PackedDataset
from forgather.ml.data.split import CorpusSplit

DEFAULT_MAX_SAMPLES = 1000  # examples read for lengths when a dataset must be iterated


class InspectError(ValueError):
    """The dataset cannot be shown as asked (a missing feature, no ``input_ids``)."""


def _length(dataset) -> int | None:
    try:
        return len(dataset)
    except TypeError:  # an iterable dataset
        return None


def first_examples(dataset, n: int) -> list:
    """The first ``n`` examples of a map-style or iterable dataset."""
    size = _length(dataset)
    if size is not None and hasattr(dataset, "__getitem__"):
        return [dataset[i] for i in range(min(n, size))]
    return list(itertools.islice(iter(dataset), n))


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
        size = _length(ds)
        rows.append((name, docs, tokens, f"{size:,}" if size is not None else "?", kind))
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
        for i, example in enumerate(first_examples(dataset, num_examples)):
            if "input_ids" not in example:
                raise InspectError(_no_input_ids(example))
            ids = [int(t) for t in example["input_ids"]]
            out.append(f"=== example {i} ({len(ids)} tokens) ===")
            out.append(_clip(tokenizer.decode(ids), max_chars))
    return "\n".join(out)


def _no_input_ids(example) -> str:
    keys = ", ".join(map(str, example)) if isinstance(example, Mapping) else type(example).__name__
    return f"the examples hold no input_ids (they hold: {keys}); show fields with --features"


def format_features(
    dataset, features: Sequence[str] | None, num_examples: int = 2, max_chars: int = 1500
) -> str:
    """The first examples' fields printed as they are (``dataset --features``).

    Args:
        dataset: any dataset of mappings.
        features: the fields to show; None or empty: every field.
        num_examples: how many.
        max_chars: clip each value.

    Raises:
        InspectError: an example lacks a requested field.
    """
    out = []
    for i, example in enumerate(first_examples(dataset, num_examples)):
        if not isinstance(example, Mapping):
            raise InspectError(
                f"example {i} is a {type(example).__name__}, not a mapping of fields"
            )
        names = list(features) if features else list(example)
        missing = [n for n in names if n not in example]
        if missing:
            raise InspectError(
                f"example {i} has no field {missing[0]!r} (fields: {', '.join(map(str, example))})"
            )
        out.append(f"=== example {i}: fields {', '.join(map(str, example))} ===")
        for name in names:
            value = example[name]
            if hasattr(value, "tolist"):
                value = value.tolist()
            out.append(f"[{name}]\n{_clip(str(value), max_chars)}")
    return "\n".join(out)


def token_lengths(dataset, max_samples: int | None = None, tokenizer=None,
                  text_field: str = "text") -> np.ndarray:  # fmt: skip
    """Tokens per document (or per example, for datasets of other kinds).

    Args:
        dataset: a dataset of this package, or any dataset of examples.
        max_samples: at most this many lengths: a seeded random sample of a
            corpus split's documents, or the first examples of another dataset
            (default: every document of a corpus split, 1000 examples otherwise).
        tokenizer: tokenizes ``text_field`` of examples that hold no ``input_ids``.
        text_field: the field holding the text of untokenized examples.
    """
    split = corpus_split_of(dataset)
    if split is not None:
        lengths = split.lengths
        if max_samples is not None and len(lengths) > max_samples:
            chosen = np.random.default_rng(0).choice(len(lengths), max_samples, replace=False)
            lengths = lengths[np.sort(chosen)]
        return lengths
    out = []
    for example in first_examples(dataset, max_samples or DEFAULT_MAX_SAMPLES):
        if "input_ids" in example:
            out.append(len(example["input_ids"]))
        elif tokenizer is not None and text_field in example:
            out.append(len(tokenizer(example[text_field])["input_ids"]))
        else:
            raise InspectError(_no_input_ids(example))
    return np.asarray(out, dtype=np.int64)


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
    features: Sequence[str] | None = None,
    tokenized: bool = False,
    max_samples: int | None = None,
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
        features: show these fields of each example as they are instead of
            decoding (an empty list: every field); examples without
            ``input_ids`` are always shown this way.
        tokenized: the examples must hold ``input_ids`` (InspectError otherwise).
        max_samples: lengths from at most this many documents per split (see
            :func:`token_lengths`).

    Returns:
        Text to print; it names the SVG files written.
    """
    sections = ["# Splits", split_sizes(datasets)]
    if num_examples and datasets:
        name, first = next(iter(datasets.items()))
        sample = first_examples(first, 1) if corpus_split_of(first) is None else []
        untokenized = (
            bool(sample) and isinstance(sample[0], Mapping) and "input_ids" not in sample[0]
        )
        if tokenized and untokenized:
            raise InspectError(_no_input_ids(sample[0]))
        if features is not None or untokenized:
            shown = format_features(first, features, num_examples, max_chars)
        else:
            shown = format_examples(first, tokenizer, num_examples, packed, max_chars)
        sections += [f"\n# Examples from {name}", shown]
    sections.append("\n# Token lengths per document")
    for name, ds in datasets.items():
        try:
            lengths = token_lengths(ds, max_samples, tokenizer)
        except InspectError:
            if tokenizer is not None:
                raise
            sections.append(f"{name}: not tokenized (give a tokenizer, -T PATH, for lengths)")
            continue
        summary = length_summary(lengths)
        line = f"{name}: {format_summary(summary)}"
        split = corpus_split_of(ds)
        if split is not None and max_samples is not None and len(split) > max_samples:
            line += f" (a random sample of {max_samples:,} of {len(split):,} documents)"
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
