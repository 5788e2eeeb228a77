"""The training side of a source's split, as raw text: what a tokenizer trains on.

A tokenizer must exist before the corpus is tokenized and split, yet it should not
see the validation text (a vocabulary fitted to the held-out text makes its loss
look better than it is). :class:`TrainingText` applies the same split as
:func:`~forgather.ml.data.split.split_corpus` to the raw documents.

Decision a reader may question: ``"tail"`` (and ``"auto"`` resolving to it) is cut
by characters here and by tokens in ``split_corpus``, so the two cuts differ by a
few tokens' worth of text. Agreeing exactly would need the tokenizer being trained;
a few hundred characters near the cut are harmless to a tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from forgather.ml.data.sources import Document, SourceFile, TextSource
from forgather.ml.data.split import held_out_documents, resolve_split_by, tail_cut


class TrainingText:
    """The documents of ``source`` that ``split_corpus`` would put in the train split.

    Args:
        source: any text source.
        validation_fraction, split_by, seed: as :func:`~forgather.ml.data.split.split_corpus`.

    It is itself a text source (``files``, ``describe``, ``documents``), so
    :func:`~forgather.ml.data.tokenizer.load_or_train_tokenizer` caches a tokenizer
    trained on it under a key that includes the split.
    """

    def __init__(
        self,
        source: TextSource,
        validation_fraction: float = 0.05,
        split_by: str = "auto",
        seed: int = 0,
    ):
        self.source = source
        self.validation_fraction = validation_fraction
        self.split_by = split_by
        self.seed = seed

    def files(self) -> list[SourceFile]:
        return self.source.files()

    def describe(self) -> dict:
        return {
            **self.source.describe(),
            "training_split": [self.validation_fraction, self.split_by, self.seed],
        }

    def documents(self) -> Iterator[Document]:
        if self.validation_fraction == 0:
            yield from self.source.documents()
            return
        # First pass: where each document is and how long, to decide the split.
        file_ids, ordinals, lengths = [], [], []
        for doc in self.source.documents():
            file_ids.append(doc.file_index)
            ordinals.append(doc.ordinal)
            lengths.append(len(doc.text))
        split_by = resolve_split_by(self.split_by, len(lengths), self.validation_fraction)
        if split_by == "tail":
            last, offset = tail_cut(np.asarray(lengths), self.validation_fraction)
            for i, doc in enumerate(self.source.documents()):
                if i < last:
                    yield doc
                elif i == last and offset:
                    yield Document(doc.file_index, doc.ordinal, doc.text[:offset])
            return
        names = [f.name for f in self.source.files()]
        held_out = held_out_documents(
            names,
            np.asarray(file_ids),
            np.asarray(ordinals),
            self.validation_fraction,
            split_by,
            self.seed,
        )
        for i, doc in enumerate(self.source.documents()):
            if not held_out[i]:
                yield doc
