"""Tokenize a text source once, in batches over several processes, and cache the result.

A :class:`TokenizedCorpus` is one flat array of token ids plus document offsets,
memory-mapped from the cache, so packing and splitting are array slicing and a
corpus larger than memory still loads at once.

Decision a reader may question: worker processes are started with ``spawn``, not
``fork``. Forking a process that already holds torch's and tokenizers' thread
pools can deadlock (and Python 3.12+ warns about it); a spawned worker imports only
this module, numpy and ``tokenizers``, which costs a fraction of a second once per run.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forgather.ml.data.cache import cache_entry, cache_key
from forgather.ml.data.sources import TextSource, file_signature

log = logging.getLogger("forgather.ml.data")

# Counters the tests (and curious users) read to see whether work was done or cached.
stats = {"documents_tokenized": 0, "corpora_tokenized": 0, "corpora_loaded_from_cache": 0}

# Characters per batch handed to a worker: big enough to amortise pickling, small
# enough that two workers stay busy on the stdlib corpus (~12 M chars).
BATCH_CHARS = 1 << 19


@dataclass
class TokenizedCorpus:
    """Token ids of every document of a source.

    Attributes:
        tokens: (total_tokens,) uint16 or uint32 ids, all documents back to back.
        offsets: (num_documents + 1,) int64; document i is ``tokens[offsets[i]:offsets[i+1]]``.
        file_ids: (num_documents,) int32 index into ``file_names``.
        ordinals: (num_documents,) int64 position of the document within its file.
        file_names: the source's file names (relative paths, stable across machines).
        path: the cache entry directory, or None when not cached.
        from_cache: this object was loaded, not computed.
    """

    tokens: np.ndarray
    offsets: np.ndarray
    file_ids: np.ndarray
    ordinals: np.ndarray
    file_names: list[str]
    path: Path | None = None
    from_cache: bool = False
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """(num_documents,) int64 token count of each document."""
        return np.diff(self.offsets)

    def document(self, i: int) -> np.ndarray:
        """Token ids of document ``i`` (a view into the memory-mapped array)."""
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def __getstate__(self) -> dict:
        # A DataLoader worker started by spawn/forkserver receives the dataset pickled:
        # send the cache path, not a copy of every token.
        state = self.__dict__.copy()
        if self.path is not None and isinstance(self.tokens, np.memmap):
            state["tokens"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.tokens is None:
            self.tokens = np.memmap(self.path / "tokens.bin", dtype=self.info["dtype"], mode="r")


# --- worker side: only numpy and tokenizers, so a spawned worker starts fast ---------

_worker: dict = {}


def _init_worker(tokenizer_json: str, bos_id: int | None, eos_id: int | None) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    # Special-token spellings inside raw text are ordinary text, not control tokens.
    tok.encode_special_tokens = True
    _worker.update(tok=tok, bos=bos_id, eos=eos_id)


def _encode_batch(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode texts; returns (all ids concatenated, (len(texts),) lengths)."""
    tok, bos, eos = _worker["tok"], _worker["bos"], _worker["eos"]
    encodings = tok.encode_batch_fast(texts, add_special_tokens=False)
    pieces = []
    for enc in encodings:
        ids = enc.ids
        if bos is not None:
            ids = [bos, *ids]
        if eos is not None:
            ids.append(eos)
        pieces.append(ids)
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    flat = np.fromiter(
        itertools.chain.from_iterable(pieces), dtype=np.uint32, count=int(lengths.sum())
    )
    return flat, lengths


# --- main side -------------------------------------------------------------------------


def _batches(source: TextSource) -> Iterator[tuple[list[str], list[int], list[int]]]:
    texts: list[str] = []
    file_ids: list[int] = []
    ordinals: list[int] = []
    size = 0
    for doc in source.documents():
        texts.append(doc.text)
        file_ids.append(doc.file_index)
        ordinals.append(doc.ordinal)
        size += len(doc.text)
        if size >= BATCH_CHARS:
            yield texts, file_ids, ordinals
            texts, file_ids, ordinals, size = [], [], [], 0
    if texts:
        yield texts, file_ids, ordinals


def _special_id(tokenizer, name: str, wanted: bool | None) -> int | None:
    """The id to add for ``add_bos``/``add_eos``. None means "if the tokenizer has
    one" (a pretrained tokenizer may lack bos); a bos equal to eos (GPT-2's
    ``<|endoftext|>``) is then left out, since the previous document's eos already
    separates the two."""
    if wanted is False:
        return None
    token_id = getattr(tokenizer, f"{name}_token_id", None)
    if token_id is None:
        if wanted is None:
            return None
        raise ValueError(f"add_{name}=True but the tokenizer has no {name} token")
    if wanted is None and name == "bos" and token_id == getattr(tokenizer, "eos_token_id", None):
        return None
    return int(token_id)


def tokenize_source(
    source: TextSource,
    tokenizer,
    add_bos: bool | None = True,
    add_eos: bool | None = True,
    num_proc: int = 1,
    cache_dir: str | os.PathLike | None = None,
) -> TokenizedCorpus:
    """Tokenize every document of ``source``, or load the result cached by an earlier run.

    The cache key covers the tokenizer fingerprint, the source's files (path, size,
    mtime) and parameters, and ``add_bos``/``add_eos``; ``num_proc`` does not change
    the result and is not part of it.

    Args:
        source: where the documents come from.
        tokenizer: a transformers fast tokenizer.
        add_bos: start every document with the bos token (None: if the tokenizer has
            one distinct from eos).
        add_eos: end every document with the eos token (how a model learns to stop;
            None: if the tokenizer has one).
        num_proc: worker processes; 1 tokenizes in this process.
        cache_dir: cache root; default :func:`~forgather.ml.data.cache.default_cache_dir`.

    Returns:
        The corpus, memory-mapped from its cache entry.

    Raises:
        DataError: a malformed input (when the source was not told to skip it).
        ValueError: the source yields no documents.
    """
    from forgather.ml.data.tokenizer import tokenizer_fingerprint

    bos_id = _special_id(tokenizer, "bos", add_bos)
    eos_id = _special_id(tokenizer, "eos", add_eos)
    files = source.files()
    key = cache_key(
        "tokenized",
        tokenizer_fingerprint(tokenizer),
        source.describe(),
        file_signature(files),
        {"bos": bos_id, "eos": eos_id},
    )
    with cache_entry("tokenized", key, cache_dir) as entry:
        if entry.ready:
            stats["corpora_loaded_from_cache"] += 1
            log.info("loaded cached tokens from %s", entry.path)
            return load_corpus(entry.path)
        dtype = np.uint16 if len(tokenizer) <= 1 << 16 else np.uint32
        start = time.perf_counter()
        info = _tokenize_into(entry.tmp_path, source, tokenizer, bos_id, eos_id, num_proc, dtype)
        info["file_names"] = [f.name for f in files]
        (entry.tmp_path / "corpus.json").write_text(json.dumps(info))
        entry.commit()
    seconds = time.perf_counter() - start
    stats["corpora_tokenized"] += 1
    log.info(
        "tokenized %d documents (%d tokens) in %.1f s with %d process(es) -> %s",
        info["num_documents"],
        info["num_tokens"],
        seconds,
        num_proc,
        entry.path,
    )
    corpus = load_corpus(entry.path)
    corpus.from_cache = False
    return corpus


def _tokenize_into(out: Path, source, tokenizer, bos_id, eos_id, num_proc: int, dtype) -> dict:
    """Stream token ids into ``out/tokens.bin``; write offsets and document metadata."""
    lengths: list[np.ndarray] = []
    file_ids: list[int] = []
    ordinals: list[int] = []
    tokenizer_json = tokenizer.backend_tokenizer.to_str()
    with open(out / "tokens.bin", "wb") as sink:

        def collect(result: tuple[np.ndarray, np.ndarray]) -> None:
            flat, batch_lengths = result
            sink.write(flat.astype(dtype).tobytes())
            lengths.append(batch_lengths)
            stats["documents_tokenized"] += len(batch_lengths)

        if num_proc <= 1:
            _init_worker(tokenizer_json, bos_id, eos_id)
            for texts, fids, ords in _batches(source):
                collect(_encode_batch(texts))
                file_ids += fids
                ordinals += ords
        else:
            ctx = multiprocessing.get_context("spawn")
            with ctx.Pool(num_proc, _init_worker, (tokenizer_json, bos_id, eos_id)) as pool:
                # Results are collected in submission order; at most two batches per
                # worker are in flight, so reading never runs far ahead of tokenizing.
                pending: deque = deque()
                for texts, fids, ords in _batches(source):
                    pending.append(pool.apply_async(_encode_batch, (texts,)))
                    file_ids += fids
                    ordinals += ords
                    if len(pending) >= 2 * num_proc:
                        collect(pending.popleft().get())
                while pending:
                    collect(pending.popleft().get())
    if not file_ids:
        raise ValueError(f"the source ({source.describe()}) yielded no documents")
    all_lengths = np.concatenate(lengths)
    offsets = np.zeros(len(all_lengths) + 1, dtype=np.int64)
    np.cumsum(all_lengths, out=offsets[1:])
    np.save(out / "offsets.npy", offsets)
    np.save(out / "file_ids.npy", np.asarray(file_ids, dtype=np.int32))
    np.save(out / "ordinals.npy", np.asarray(ordinals, dtype=np.int64))
    return {
        "dtype": np.dtype(dtype).name,
        "num_documents": len(all_lengths),
        "num_tokens": int(offsets[-1]),
        "vocab_size": len(tokenizer),
    }


def load_corpus(path: str | os.PathLike) -> TokenizedCorpus:
    """Open a cache entry written by :func:`tokenize_source` (tokens memory-mapped)."""
    path = Path(path)
    info = json.loads((path / "corpus.json").read_text())
    if info["num_tokens"]:
        tokens = np.memmap(path / "tokens.bin", dtype=info["dtype"], mode="r")
    else:
        tokens = np.zeros(0, dtype=info["dtype"])  # mmap of an empty file is an error
    return TokenizedCorpus(
        tokens=tokens,
        offsets=np.load(path / "offsets.npy"),
        file_ids=np.load(path / "file_ids.npy"),
        ordinals=np.load(path / "ordinals.npy"),
        file_names=info["file_names"],
        path=path,
        from_cache=True,
        info=info,
    )
