"""Byte-level BPE tokenizers: train from any text, save and load as a transformers fast tokenizer.

The result is a ``transformers.PreTrainedTokenizerFast`` whose ``save_pretrained``
output (``tokenizer.json`` + ``tokenizer_config.json``) loads with
``AutoTokenizer.from_pretrained`` in an environment without Forgather, so a
generated model directory can ship it.

Decision a reader may question: there is no normalizer and no prefix space.
Byte-level BPE can represent any byte sequence, so with neither, decoding the
encoding gives back exactly the input text: indentation, tabs, ``\\r\\n`` and all.
A code model needs that more than it needs NFC folding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from forgather.ml.data.cache import cache_entry, cache_key
from forgather.ml.data.sources import TextSource, file_signature

log = logging.getLogger("forgather.ml.data")

# A minimal chat format for small models: role headers in plain text, each turn
# closed by the eos token (so generation stops at the end of the assistant's turn).
SIMPLE_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@dataclass(frozen=True)
class SpecialTokens:
    """The special tokens, in the order they take the first vocabulary ids (bos = 0 ...).

    The defaults use ``<|...|>`` spellings because ``<s>``-style markers occur in
    real text (HTML in Python strings) and would be read as special tokens there.
    """

    bos: str = "<|bos|>"
    eos: str = "<|eos|>"
    pad: str = "<|pad|>"
    unk: str = "<|unk|>"

    def as_list(self) -> list[str]:
        return [self.bos, self.eos, self.pad, self.unk]


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 2048,
    special_tokens: SpecialTokens | None = None,
    min_frequency: int = 2,
    model_max_length: int = 2048,
    add_bos_token: bool = True,
    chat_template: str | None = None,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer.

    Args:
        texts: the training text, any iterable of strings (read once).
        vocab_size: total vocabulary size, special tokens and the 256 byte symbols included.
        special_tokens: bos/eos/pad/unk spellings; they get ids 0..3.
        min_frequency: a pair must occur this often to be merged.
        model_max_length: recorded in the tokenizer config (the longest sequence a
            model using it is meant for).
        add_bos_token: prepend bos when encoding (what ``tokenizer(text)`` does).
        chat_template: a Jinja chat template (e.g. :data:`SIMPLE_CHAT_TEMPLATE`) or None.

    Returns:
        A fast tokenizer; ``decode(encode(x), skip_special_tokens=True) == x`` for any x
        that contains no special-token spelling.

    Raises:
        ValueError: the vocabulary is too small to hold the bytes and special tokens.
    """
    special = special_tokens or SpecialTokens()
    if vocab_size < 256 + len(special.as_list()):
        raise ValueError(
            f"vocab_size={vocab_size} cannot hold 256 byte symbols plus special tokens"
        )
    tok = Tokenizer(models.BPE(unk_token=special.unk))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=special.as_list(),
        # Every byte is in the base alphabet, so no input ever needs unk.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if add_bos_token:
        bos_id = tok.token_to_id(special.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{special.bos} $A",
            pair=f"{special.bos} $A {special.bos} $B",
            special_tokens=[(special.bos, bos_id)],
        )
    return wrap_tokenizer(tok, special, model_max_length, chat_template)


def wrap_tokenizer(
    tok: Tokenizer,
    special_tokens: SpecialTokens,
    model_max_length: int = 2048,
    chat_template: str | None = None,
) -> PreTrainedTokenizerFast:
    """Wrap a ``tokenizers.Tokenizer`` as a transformers fast tokenizer."""
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=special_tokens.bos,
        eos_token=special_tokens.eos,
        pad_token=special_tokens.pad,
        unk_token=special_tokens.unk,
        model_max_length=model_max_length,
        padding_side="right",
        # The default would rewrite " ," as "," when decoding: not a round trip.
        clean_up_tokenization_spaces=False,
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    return fast


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase | Tokenizer) -> str:
    """A hash of everything that decides how text becomes ids (vocab, merges, added
    tokens, pre- and post-processing): equal fingerprints tokenize identically."""
    backend = tokenizer if isinstance(tokenizer, Tokenizer) else tokenizer.backend_tokenizer
    return hashlib.sha256(backend.to_str().encode()).hexdigest()[:16]


def brings_own_code(model_path: str | os.PathLike) -> bool:
    """Whether a model directory brings its own model code (``auto_map``: a Forgather model)."""
    try:
        with open(os.path.join(model_path, "config.json")) as f:
            return "auto_map" in json.load(f)
    except (OSError, ValueError):
        return False


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerFast:
    """Load a tokenizer directory written by ``save_pretrained``.

    In a generated model directory, ``config.json`` names a model type only the
    directory's own code knows; transformers would then ask on the terminal
    whether to run it. That code is trusted when the model is loaded, so it is
    trusted here too, instead of prompting.
    """
    from transformers import AutoTokenizer

    path = os.fspath(path)
    looks_like_a_path = path.startswith((os.sep, ".", "~")) or path.count("/") > 1
    if looks_like_a_path and not os.path.isdir(path):  # not a hub name ("org/name")
        raise FileNotFoundError(f"no tokenizer directory {path}")
    return AutoTokenizer.from_pretrained(path, trust_remote_code=brings_own_code(path))


def _texts(source: TextSource, limit_chars: int | None) -> Iterator[str]:
    total = 0
    for doc in source.documents():
        yield doc.text
        total += len(doc.text)
        if limit_chars is not None and total >= limit_chars:
            return


def load_or_train_tokenizer(
    source: TextSource,
    vocab_size: int = 2048,
    special_tokens: SpecialTokens | None = None,
    min_frequency: int = 2,
    model_max_length: int = 2048,
    add_bos_token: bool = True,
    chat_template: str | None = None,
    max_train_chars: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> PreTrainedTokenizerFast:
    """Train a tokenizer on a text source once; later calls load it from the cache.

    The cache entry is keyed by the source's files (paths, sizes, mtimes), its
    parameters and every argument here, so editing the data or an argument trains a
    new tokenizer while an unchanged config starts at once.

    Args:
        source: a :class:`~forgather.ml.data.sources.TextSource` (e.g. the stdlib corpus).
        max_train_chars: stop reading the source after this many characters (faster
            training on a large corpus; the first documents in source order are used).
        cache_dir: cache root; default :func:`~forgather.ml.data.cache.default_cache_dir`.
        Other arguments: as :func:`train_tokenizer`.

    Returns:
        The tokenizer; its ``name_or_path`` is the cache entry directory.
    """
    special = special_tokens or SpecialTokens()
    params = {
        "vocab_size": vocab_size,
        "special_tokens": asdict(special),
        "min_frequency": min_frequency,
        "model_max_length": model_max_length,
        "add_bos_token": add_bos_token,
        "chat_template": chat_template,
        "max_train_chars": max_train_chars,
    }
    key = cache_key("tokenizer", source.describe(), file_signature(source.files()), params)
    with cache_entry("tokenizers", key, cache_dir) as entry:
        if not entry.ready:
            start = time.perf_counter()
            tokenizer = train_tokenizer(
                _texts(source, max_train_chars),
                vocab_size,
                special,
                min_frequency,
                model_max_length,
                add_bos_token,
                chat_template,
            )
            tokenizer.save_pretrained(entry.tmp_path)
            (entry.tmp_path / "forgather_params.json").write_text(json.dumps(params, indent=2))
            entry.commit()
            log.info("trained tokenizer %s in %.1f s", entry.path.name, time.perf_counter() - start)
        else:
            log.info("loaded cached tokenizer %s", entry.path)
    return load_tokenizer(entry.path)


def save_tokenizer(tokenizer: PreTrainedTokenizerBase, output_dir: str | os.PathLike) -> Path:
    """Write ``tokenizer`` with ``save_pretrained`` and return the directory."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))
    return out


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id to pad batches with: the pad token, else eos (pretrained tokenizers such
    as GPT-2's have no pad token), else 0. Padding is never a target, so any id works."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return int(token_id)
    return 0
