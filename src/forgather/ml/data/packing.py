"""Turn a corpus split into training examples: packed fixed-length blocks, or documents.

:class:`PackedDataset` concatenates the split's documents (each already framed by
bos/eos) into one stream and cuts it into blocks of ``block_size`` tokens.
``position_ids`` restart at 0 wherever a document starts, and at the start of each
block; models that build attention from ``position_ids`` therefore never let a token
attend across a document boundary, and no block holds padding.
:class:`DocumentDataset` yields one document (or a ``max_length`` piece of one) per
example, for padding per batch with :class:`~forgather.ml.data.collator.CausalLMCollator`.

Decision a reader may question: a document cut by a block boundary continues in the
next block with positions restarting at 0, as if it were a new document. Continuing
the count would need positions beyond ``block_size`` (which learned position
embeddings cannot take) and would still give the piece no context from the
previous block.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from forgather.ml.data.split import CorpusSplit


class PackedDataset(Dataset):
    """Fixed-length blocks of a split's concatenated documents.

    Args:
        split: the documents to pack.
        block_size: tokens per block.
        shuffle_seed: documents are put in a random order drawn from this seed before
            packing (so a block mixes files from across the corpus); None keeps
            corpus order.
        drop_last: drop the final partial block; if False it is returned shorter.

    Items are dicts of 1-D int64 tensors: ``input_ids`` and ``position_ids``, both
    (block_size,).
    """

    def __init__(
        self,
        split: CorpusSplit,
        block_size: int,
        shuffle_seed: int | None = 0,
        drop_last: bool = True,
    ):
        if block_size < 2:
            raise ValueError(f"block_size must be at least 2, got {block_size}")
        self.split = split
        self.block_size = block_size
        order = split.doc_ids[split.lengths > 0]
        if shuffle_seed is not None:
            order = np.random.default_rng(shuffle_seed).permutation(order)
        self.order = order  # (n_docs,) corpus document ids in stream order
        lengths = split.corpus.lengths[order]
        # stream_starts[j] = position in the stream of the j-th document's first token
        self.stream_starts = np.zeros(len(order) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.stream_starts[1:])
        total = int(self.stream_starts[-1])
        self.num_blocks = total // block_size if drop_last else -(-total // block_size)

    def __len__(self) -> int:
        return self.num_blocks

    def segments(self, index: int) -> list[tuple[int, int, int]]:
        """The pieces of block ``index`` as ``(corpus doc id, start, end)`` token ranges
        within each document, in block order."""
        if not 0 <= index < self.num_blocks:
            raise IndexError(f"block {index} out of range ({self.num_blocks} blocks)")
        begin = index * self.block_size
        end = min(begin + self.block_size, int(self.stream_starts[-1]))
        first = int(np.searchsorted(self.stream_starts, begin, side="right")) - 1
        pieces = []
        j = first
        while j < len(self.order) and self.stream_starts[j] < end:
            doc_start = int(self.stream_starts[j])
            lo = max(begin, doc_start) - doc_start
            hi = min(end, int(self.stream_starts[j + 1])) - doc_start
            pieces.append((int(self.order[j]), lo, hi))
            j += 1
        return pieces

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        corpus = self.split.corpus
        ids, positions = [], []
        for doc, lo, hi in self.segments(index):
            ids.append(corpus.document(doc)[lo:hi])
            positions.append(np.arange(hi - lo, dtype=np.int64))
        # np.concatenate copies out of the read-only memory map, so the tensor owns
        # writable memory.
        return {
            "input_ids": torch.from_numpy(np.concatenate(ids).astype(np.int64)),
            "position_ids": torch.from_numpy(np.concatenate(positions)),
        }


class DocumentDataset(Dataset):
    """One example per document; documents longer than ``max_length`` are cut into
    consecutive pieces (positions restart at 0 in each piece).

    Items are dicts of 1-D int64 tensors ``input_ids`` and ``position_ids`` of varying
    length; batch them with a padding collator.
    """

    def __init__(self, split: CorpusSplit, max_length: int):
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}")
        self.split = split
        self.max_length = max_length
        lengths = split.lengths
        pieces_per_doc = -(-lengths // max_length)  # ceil; 0 for an empty document
        # (doc position in split, piece start) of every example
        self.doc_index = np.repeat(np.arange(len(split), dtype=np.int64), pieces_per_doc)
        first_example = np.cumsum(pieces_per_doc) - pieces_per_doc
        self.piece_start = (
            np.arange(len(self.doc_index)) - first_example[self.doc_index]
        ) * max_length

    def __len__(self) -> int:
        return len(self.doc_index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = int(self.piece_start[index])
        tokens = self.split.document(int(self.doc_index[index]))[start : start + self.max_length]
        return {
            "input_ids": torch.from_numpy(tokens.astype(np.int64)),
            "position_ids": torch.arange(len(tokens), dtype=torch.int64),
        }
