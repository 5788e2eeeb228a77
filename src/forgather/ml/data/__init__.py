"""Data for language models: tokenizers, text sources, tokenization cache, splits,
packing, collation and resumable sampling.

Typical use, from the embedded standard-library corpus to a training batch::

    from forgather.ml.data import (CausalLMCollator, PackedDataset, ResumableSampler,
        load_or_train_tokenizer, load_splits, python_stdlib_source)

    source = python_stdlib_source()
    tokenizer = load_or_train_tokenizer(source, vocab_size=2048)
    splits = load_splits(source, tokenizer, validation_fraction=0.05, num_proc=2)
    train = PackedDataset(splits["train"], block_size=512)
    loader = DataLoader(train, batch_size=8, sampler=ResumableSampler(train, seed=1),
                        collate_fn=CausalLMCollator(tokenizer.pad_token_id))

Decision a reader may question: names are resolved lazily (PEP 562). Tokenization
worker processes import this package; loading torch and transformers there, for
names they never use, would add seconds to every worker start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from forgather._lazy import lazy_exports

if TYPE_CHECKING:  # for type checkers and IDEs; never executed at run time
    from forgather.ml.data.blocks_view import blocks_view
    from forgather.ml.data.cache import default_cache_dir
    from forgather.ml.data.chat import (
        ChatDataset,
        ChatFiles,
        ChatSplit,
        default_chat_template,
        load_chat_splits,
        open_chat,
        render_conversation,
        with_chat_template,
    )
    from forgather.ml.data.collator import IGNORE_INDEX, CausalLMCollator
    from forgather.ml.data.packing import DocumentDataset, PackedDataset
    from forgather.ml.data.sampler import ResumableSampler
    from forgather.ml.data.sources import (
        CsvFiles,
        DataError,
        Document,
        JsonlFiles,
        ParquetFiles,
        SavedDataset,
        TextFiles,
        TextSource,
        open_source,
    )
    from forgather.ml.data.split import CorpusSplit, load_splits, split_corpus
    from forgather.ml.data.stdlib_corpus import python_stdlib_source, stdlib_dir
    from forgather.ml.data.tokenization import TokenizedCorpus, load_corpus, tokenize_source
    from forgather.ml.data.tokenizer import (
        SIMPLE_CHAT_TEMPLATE,
        SpecialTokens,
        load_or_train_tokenizer,
        load_tokenizer,
        pad_token_id,
        save_tokenizer,
        tokenizer_fingerprint,
        train_tokenizer,
    )
    from forgather.ml.data.training_text import TrainingText

# module (under forgather.ml.data) -> public names it defines
_MODULES = {
    "blocks_view": ["blocks_view"],
    "cache": ["default_cache_dir"],
    "chat": [
        "ChatDataset",
        "ChatFiles",
        "ChatSplit",
        "default_chat_template",
        "load_chat_splits",
        "open_chat",
        "render_conversation",
        "with_chat_template",
    ],
    "collator": ["CausalLMCollator", "IGNORE_INDEX"],
    "packing": ["DocumentDataset", "PackedDataset"],
    "sampler": ["ResumableSampler"],
    "sources": [
        "CsvFiles",
        "DataError",
        "Document",
        "JsonlFiles",
        "ParquetFiles",
        "SavedDataset",
        "TextFiles",
        "TextSource",
        "open_source",
    ],
    "split": ["CorpusSplit", "load_splits", "split_corpus"],
    "stdlib_corpus": ["python_stdlib_source", "stdlib_dir"],
    "tokenization": ["TokenizedCorpus", "load_corpus", "tokenize_source"],
    "tokenizer": [
        "SIMPLE_CHAT_TEMPLATE",
        "SpecialTokens",
        "load_or_train_tokenizer",
        "load_tokenizer",
        "pad_token_id",
        "save_tokenizer",
        "tokenizer_fingerprint",
        "train_tokenizer",
    ],
    "training_text": ["TrainingText"],
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "CausalLMCollator",
    "ChatDataset",
    "ChatFiles",
    "ChatSplit",
    "CsvFiles",
    "TrainingText",
    "blocks_view",
    "default_chat_template",
    "load_chat_splits",
    "open_chat",
    "pad_token_id",
    "render_conversation",
    "with_chat_template",
    "CorpusSplit",
    "DataError",
    "Document",
    "DocumentDataset",
    "IGNORE_INDEX",
    "JsonlFiles",
    "PackedDataset",
    "ParquetFiles",
    "ResumableSampler",
    "SIMPLE_CHAT_TEMPLATE",
    "SavedDataset",
    "SpecialTokens",
    "TextFiles",
    "TextSource",
    "TokenizedCorpus",
    "default_cache_dir",
    "load_corpus",
    "load_or_train_tokenizer",
    "load_splits",
    "load_tokenizer",
    "open_source",
    "python_stdlib_source",
    "save_tokenizer",
    "split_corpus",
    "stdlib_dir",
    "tokenize_source",
    "tokenizer_fingerprint",
    "train_tokenizer",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
