"""Deterministic train/validation splits of a tokenized corpus, by file or by document.

Each unit (a file, or a document identified by file name and position in it) gets a
64-bit hash of ``(seed, name[, ordinal])``; units are sorted by hash and the first
``round(fraction * units)`` form the validation split.

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

SplitBy = Literal["file", "document"]


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


def split_corpus(
    corpus: TokenizedCorpus,
    validation_fraction: float = 0.05,
    split_by: SplitBy = "file",
    seed: int = 0,
) -> dict[str, CorpusSplit]:
    """Split a corpus into ``{"train": ..., "validation": ...}``.

    Args:
        corpus: the tokenized corpus.
        validation_fraction: share of units (files or documents) held out, 0 <= f < 1.
            When positive, at least one unit is held out and at least one kept.
        split_by: ``"file"`` keeps every file whole on one side (no near-duplicate
            documents of one file on both sides); ``"document"`` splits inside files.
        seed: changes which units are held out.

    Returns:
        The two splits; ``validation`` is empty when ``validation_fraction`` is 0.

    Raises:
        ValueError: bad fraction, or fewer than two units to split.
    """
    if not 0 <= validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction}")
    file_hashes = _name_hashes(corpus.file_names, seed)
    if split_by == "file":
        unit_of_doc = corpus.file_ids.astype(np.int64)
        present = np.unique(unit_of_doc)
        unit_hashes = file_hashes[present]
    elif split_by == "document":
        present = np.arange(len(corpus), dtype=np.int64)
        unit_of_doc = present
        unit_hashes = _mix(file_hashes[corpus.file_ids] + corpus.ordinals.astype(np.uint64))
    else:
        raise ValueError(f"split_by must be 'file' or 'document', got {split_by!r}")

    n_units = len(present)
    n_val = round(validation_fraction * n_units)
    if validation_fraction > 0:
        if n_units < 2:
            raise ValueError(
                f"cannot hold out a validation split from {n_units} {split_by}(s); "
                + ("use split_by='document'" if split_by == "file" else "add documents")
            )
        n_val = min(max(n_val, 1), n_units - 1)
    # Ties (equal hashes) are broken by unit index: stable sort keeps input order.
    held_out_units = present[np.argsort(unit_hashes, kind="stable")[:n_val]]
    is_val = np.isin(unit_of_doc, held_out_units)
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
    add_bos: bool = True,
    add_eos: bool = True,
    num_proc: int = 1,
    cache_dir: str | None = None,
) -> dict[str, CorpusSplit]:
    """Tokenize ``source`` (or load it from the cache) and split it: the usual first
    step of a dataset config. Arguments as :func:`tokenize_source` and
    :func:`split_corpus`."""
    from forgather.ml.data.tokenization import tokenize_source

    corpus = tokenize_source(source, tokenizer, add_bos, add_eos, num_proc, cache_dir)
    return split_corpus(corpus, validation_fraction, split_by, seed)
