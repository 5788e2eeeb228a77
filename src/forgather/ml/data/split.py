"""Deterministic train/validation splits of a tokenized corpus, by file or by document.

Each unit (a file, or a document identified by file name and position in it) gets a
64-bit hash of ``(seed, name[, ordinal])``; units are sorted by hash and the first
``round(fraction * units)`` form the validation split. ``split_by="tail"`` instead
holds out the last ``fraction`` of the token stream (one long document, a play or a
novel, cannot be split by document); ``"auto"`` picks ``"document"`` when there are
enough documents to hold out at least one, else ``"tail"``.

Decision a reader may question: the split hashes names, not positions in a list, and
never uses a random generator. So it is the same on every machine, in every
process, whatever order the files were listed in; and a document keeps its side of
the split when others are added (only the few units near the cut can move).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from forgather.ml.data.tokenization import TokenizedCorpus

SplitBy = Literal["file", "document", "tail", "auto"]
SPLIT_BY = ("file", "document", "tail", "auto")


@dataclass
class CorpusSplit:
    """A subset of a corpus's documents, in corpus order.

    Attributes:
        corpus: the tokenized corpus.
        doc_ids: (n,) int64 ascending document indices into ``corpus``.
        name: ``"train"`` or ``"validation"``.
    """

    corpus: TokenizedCorpus
    doc_ids: np.ndarray
    name: str

    def __len__(self) -> int:
        return len(self.doc_ids)

    @property
    def lengths(self) -> np.ndarray:
        """(n,) int64 token count of each document of the split."""
        return self.corpus.lengths[self.doc_ids]

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def document(self, i: int) -> np.ndarray:
        """Token ids of the split's i-th document."""
        return self.corpus.document(int(self.doc_ids[i]))

    def file_names(self) -> list[str]:
        """Names of the files that contribute documents to this split."""
        ids = np.unique(self.corpus.file_ids[self.doc_ids])
        return [self.corpus.file_names[i] for i in ids]


def _name_hashes(names: list[str], seed: int) -> np.ndarray:
    # blake2b rather than hash(): Python's str hash is salted per process.
    digests = (hashlib.blake2b(f"{seed}\0{n}".encode(), digest_size=8).digest() for n in names)
    return np.fromiter(
        (int.from_bytes(d, "little") for d in digests), dtype=np.uint64, count=len(names)
    )


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads (file hash + ordinal) over all 64 bits (wraps mod 2**64)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def held_out_documents(
    file_names: list[str],
    file_ids: np.ndarray,
    ordinals: np.ndarray,
    validation_fraction: float,
    split_by: str,
    seed: int = 0,
) -> np.ndarray:
    """Which documents a ``"file"`` or ``"document"`` split holds out.

    Shared by :func:`split_corpus` (on tokens) and :class:`TrainingText` (on raw text,
    before any tokenizer exists), so both agree on every document.

    Args:
        file_names: the source's file names.
        file_ids: (n,) file index of each document.
        ordinals: (n,) position of each document within its file.
        validation_fraction: share of units held out, 0 <= f < 1.
        split_by: ``"file"`` or ``"document"``.
        seed: changes which units are held out.

    Returns:
        (n,) bool, True for held-out documents.

    Raises:
        ValueError: bad arguments, or fewer than two units to split.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    file_ids = np.asarray(file_ids, dtype=np.int64)
    ordinals = np.asarray(ordinals, dtype=np.int64)
    file_hashes = _name_hashes(file_names, seed)
    if split_by == "file":
        unit_of_doc = file_ids
        present = np.unique(unit_of_doc)
        unit_hashes = file_hashes[present]
    elif split_by == "document":
        present = np.arange(len(file_ids), dtype=np.int64)
        unit_of_doc = present
        unit_hashes = _mix(file_hashes[file_ids] + ordinals.astype(np.uint64))
    else:
        raise ValueError(f"split_by must be one of {SPLIT_BY}, got {split_by!r}")

    n_units = len(present)
    n_val = round(validation_fraction * n_units)
    if validation_fraction > 0:
        if n_units < 2:
            raise ValueError(
                f"cannot hold out a validation split from {n_units} {split_by}(s); "
                + (
                    "use split_by='document' or 'tail'"
                    if split_by == "file"
                    else "use split_by='tail' (the last fraction of the tokens)"
                )
            )
        n_val = min(max(n_val, 1), n_units - 1)
    # Ties (equal hashes) are broken by unit index: stable sort keeps input order.
    held_out_units = present[np.argsort(unit_hashes, kind="stable")[:n_val]]
    return np.isin(unit_of_doc, held_out_units)


def resolve_split_by(split_by: str, num_documents: int, validation_fraction: float) -> str:
    """``"auto"`` becomes ``"document"`` when ``fraction x documents >= 1`` (a held-out
    document is then about the asked share), else ``"tail"``; other values pass."""
    if split_by != "auto":
        return split_by
    if num_documents >= 2 and validation_fraction * num_documents >= 1:
        return "document"
    return "tail"


def tail_cut(lengths: np.ndarray, validation_fraction: float) -> tuple[int, int]:
    """Where a ``"tail"`` split cuts a stream of documents with these lengths.

    Returns:
        ``(document, offset)``: the validation side starts at ``offset`` within
        ``document`` (offset 0 when the cut falls between documents).

    Raises:
        ValueError: the stream is too short to keep at least one item on each side.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    n_val = round(validation_fraction * total)
    if validation_fraction > 0:
        if total < 2:
            raise ValueError(f"cannot hold out a validation split from {total} token(s)")
        n_val = min(max(n_val, 1), total - 1)
    cut = total - n_val
    ends = np.cumsum(lengths)
    doc = int(np.searchsorted(ends, cut, side="right"))
    if doc >= len(lengths):  # cut == total: nothing held out
        return len(lengths), 0
    return doc, cut - (int(ends[doc]) - int(lengths[doc]))


def _cut_document(corpus: TokenizedCorpus, doc: int, offset: int) -> TokenizedCorpus:
    """The same corpus with document ``doc`` cut in two at token ``offset`` (the tokens
    are shared, only the offsets and per-document arrays change)."""
    start = int(corpus.offsets[doc])
    offsets = np.insert(corpus.offsets, doc + 1, start + offset)
    return TokenizedCorpus(
        tokens=corpus.tokens,
        offsets=offsets,
        file_ids=np.insert(corpus.file_ids, doc, corpus.file_ids[doc]),
        ordinals=np.insert(corpus.ordinals, doc, corpus.ordinals[doc]),
        file_names=corpus.file_names,
        path=corpus.path,
        from_cache=corpus.from_cache,
        info=corpus.info,
    )


def split_corpus(
    corpus: TokenizedCorpus,
    validation_fraction: float = 0.05,
    split_by: SplitBy = "file",
    seed: int = 0,
) -> dict[str, CorpusSplit]:
    """Split a corpus into ``{"train": ..., "validation": ...}``.

    Args:
        corpus: the tokenized corpus.
        validation_fraction: share of units (files or documents; tokens for
            ``"tail"``) held out, 0 <= f < 1. When positive, at least one unit is
            held out and at least one kept.
        split_by: ``"file"`` keeps every file whole on one side (no near-duplicate
            documents of one file on both sides); ``"document"`` splits inside files;
            ``"tail"`` holds out the last tokens of the corpus (in corpus order),
            cutting the document where the cut falls in two; ``"auto"`` is
            ``"document"`` when ``fraction x documents >= 1``, else ``"tail"``.
        seed: changes which units are held out (not used by ``"tail"``).

    Returns:
        The two splits; ``validation`` is empty when ``validation_fraction`` is 0.
        With ``"tail"`` both splits refer to a corpus whose cut document is two
        documents (the validation piece starts without bos).

    Raises:
        ValueError: bad fraction, or fewer than two units to split.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    split_by = resolve_split_by(split_by, len(corpus), validation_fraction)  # type: ignore[assignment]
    if split_by == "tail":
        doc, offset = tail_cut(corpus.lengths, validation_fraction)
        if offset:
            corpus = _cut_document(corpus, doc, offset)
            doc += 1
        is_val = np.arange(len(corpus)) >= doc
    else:
        is_val = held_out_documents(
            corpus.file_names, corpus.file_ids, corpus.ordinals, validation_fraction, split_by, seed
        )
    all_docs = np.arange(len(corpus), dtype=np.int64)
    return {
        "train": CorpusSplit(corpus, all_docs[~is_val], "train"),
        "validation": CorpusSplit(corpus, all_docs[is_val], "validation"),
    }


def load_splits(
    source,
    tokenizer,
    validation_fraction: float = 0.05,
    split_by: SplitBy = "file",
    seed: int = 0,
    add_bos: bool | None = True,
    add_eos: bool | None = True,
    num_proc: int = 1,
    cache_dir: str | None = None,
) -> dict[str, CorpusSplit]:
    """Tokenize ``source`` (or load it from the cache) and split it: the usual first
    step of a dataset config. Arguments as :func:`tokenize_source` and
    :func:`split_corpus`."""
    from forgather.ml.data.tokenization import tokenize_source

    corpus = tokenize_source(source, tokenizer, add_bos, add_eos, num_proc, cache_dir)
    return split_corpus(corpus, validation_fraction, split_by, seed)
