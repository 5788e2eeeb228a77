"""Speed of the data pipeline on the embedded stdlib corpus: tokenizer training, and
tokenizing + packing with 1 and 2 processes, then a cached reload.

    .venv/bin/python benchmarks/data_speed.py [--vocab-size 2048] [--block-size 512]

Every measurement writes into a fresh temporary cache, so nothing is reused between
them except where "cached" says so. Tokens are counted with the trained tokenizer
(bos/eos included). ``TOKENIZERS_PARALLELISM`` is set to false, as ``make`` does, so
one process uses one core and the 1- vs 2-process figures compare processes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forgather.ml.data import (  # noqa: E402  (environment first: tokenizers reads it on import)
    PackedDataset,
    python_stdlib_source,
    split_corpus,
    tokenize_source,
    train_tokenizer,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=2048)
    parser.add_argument("--block-size", type=int, default=512)
    args = parser.parse_args()

    source = python_stdlib_source()
    start = time.perf_counter()
    texts = [d.text for d in source.documents()]
    read_s = time.perf_counter() - start
    chars = sum(len(t) for t in texts)
    print(
        f"corpus: {len(texts)} files, {chars / 1e6:.1f} M chars, read in {read_s:.2f} s "
        f"(TOKENIZERS_PARALLELISM={os.environ['TOKENIZERS_PARALLELISM']}, {os.cpu_count()} CPUs)"
    )

    start = time.perf_counter()
    tokenizer = train_tokenizer(texts, vocab_size=args.vocab_size)
    train_s = time.perf_counter() - start

    results = {}
    for num_proc in (1, 2):
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            corpus = tokenize_source(source, tokenizer, num_proc=num_proc, cache_dir=cache)
            tokenize_s = time.perf_counter() - start
            start = time.perf_counter()
            train = PackedDataset(split_corpus(corpus, 0.05)["train"], args.block_size)
            for i in range(len(train)):
                train[i]
            pack_s = time.perf_counter() - start
            results[num_proc] = (corpus.info["num_tokens"], tokenize_s, pack_s, len(train))
            if num_proc == 2:
                start = time.perf_counter()
                cached = tokenize_source(source, tokenizer, num_proc=num_proc, cache_dir=cache)
                cached_s = time.perf_counter() - start
                assert cached.from_cache

    tokens = results[1][0]
    print(
        f"tokenizer training (vocab {args.vocab_size}): {train_s:.2f} s, "
        f"{chars / train_s / 1e6:.2f} M chars/s, {tokens / train_s / 1e3:.0f} k tokens/s"
    )
    for num_proc, (tokens, tokenize_s, pack_s, blocks) in results.items():
        total = tokenize_s + pack_s
        print(
            f"tokenize + pack, {num_proc} process(es): {tokens:,} tokens in {total:.2f} s "
            f"= {tokens / total / 1e3:.0f} k tokens/s (tokenize {tokenize_s:.2f} s, "
            f"pack {blocks} blocks of {args.block_size} {pack_s:.2f} s)"
        )
    speedup = (results[1][1] + results[1][2]) / (results[2][1] + results[2][2])
    print(f"2 processes vs 1: {speedup:.2f}x")
    print(f"cached reload of the tokenized corpus: {cached_s * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
