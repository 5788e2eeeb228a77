"""The logic behind data commands of the ``forgather`` CLI, as plain functions.

``forgather tokenizer train`` (or however the CLI names it) parses its arguments and
calls :func:`train_tokenizer_command`, which returns the text to print. The
``dataset`` command's logic is :func:`forgather.ml.data.inspect.dataset_report`.

Decision a reader may question: the command trains afresh into ``output_dir`` and
does not go through the tokenizer cache. Someone who runs a command to train a
tokenizer expects it trained, and the output directory is the artifact they asked
for; configs get caching from :func:`~forgather.ml.data.tokenizer.load_or_train_tokenizer`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from forgather.ml.data.sources import TextSource, open_source
from forgather.ml.data.stdlib_corpus import python_stdlib_source
from forgather.ml.data.tokenizer import SIMPLE_CHAT_TEMPLATE, SpecialTokens, train_tokenizer

# The input name that selects the embedded standard-library corpus.
STDLIB = "stdlib"


def source_for_inputs(
    inputs: Sequence[str], format: str = "auto", text_field: str = "text", on_error: str = "raise"
) -> TextSource:
    """The source named on a command line: ``stdlib`` (or nothing) for the embedded
    corpus, else local paths as :func:`~forgather.ml.data.sources.open_source` reads them."""
    if not inputs or list(inputs) == [STDLIB]:
        return python_stdlib_source()
    return open_source(list(inputs), format=format, text_field=text_field, on_error=on_error)  # type: ignore[arg-type]


def train_tokenizer_command(
    inputs: Sequence[str],
    output_dir: str | os.PathLike,
    vocab_size: int = 2048,
    format: str = "auto",
    text_field: str = "text",
    min_frequency: int = 2,
    model_max_length: int = 2048,
    chat_template: str | None = None,
    max_train_chars: int | None = None,
    on_error: str = "raise",
) -> str:
    """Train a byte-level BPE tokenizer on local data and save it to ``output_dir``.

    Args:
        inputs: files/directories, or ``["stdlib"]`` / ``[]`` for the embedded corpus.
        output_dir: where ``save_pretrained`` writes the tokenizer.
        vocab_size: total vocabulary size.
        format: input format (see :func:`~forgather.ml.data.sources.open_source`).
        text_field: JSON field / column holding the text.
        min_frequency: minimum pair count for a merge.
        model_max_length: recorded in the tokenizer config.
        chat_template: ``"simple"`` for :data:`SIMPLE_CHAT_TEMPLATE`, a path to a Jinja
            file, a template string, or None.
        max_train_chars: read at most this many characters of input.
        on_error: ``"raise"`` or ``"skip"`` malformed inputs.

    Returns:
        A short report: where it was saved, the vocabulary, the speed, and a round-trip
        check on the first document.

    Raises:
        DataError: missing or malformed input.
    """
    source = source_for_inputs(inputs, format, text_field, on_error)
    if chat_template == "simple":
        chat_template = SIMPLE_CHAT_TEMPLATE
    elif chat_template is not None and Path(chat_template).is_file():
        chat_template = Path(chat_template).read_text()

    counted = {"chars": 0, "documents": 0}

    def texts() -> Iterator[str]:
        for doc in source.documents():
            counted["chars"] += len(doc.text)
            counted["documents"] += 1
            yield doc.text
            if max_train_chars is not None and counted["chars"] >= max_train_chars:
                return

    start = time.perf_counter()
    tokenizer = train_tokenizer(
        texts(),
        vocab_size,
        SpecialTokens(),
        min_frequency,
        model_max_length,
        chat_template=chat_template,
    )
    seconds = time.perf_counter() - start
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(out))

    sample = next(iter(source.documents())).text
    # verbose=False: a whole document is longer than model_max_length, and that is fine here
    ids = tokenizer(sample, add_special_tokens=False, verbose=False)["input_ids"]
    round_trip = tokenizer.decode(ids) == sample
    return "\n".join(
        [
            f"saved tokenizer to {out}",
            f"vocabulary: {len(tokenizer)} tokens; special: {tokenizer.all_special_tokens}",
            f"trained on {counted['documents']:,} documents, {counted['chars']:,} characters "
            f"in {seconds:.1f} s ({counted['chars'] / max(seconds, 1e-9) / 1e6:.2f} M chars/s)",
            f"first document: {len(sample):,} chars -> {len(ids):,} tokens "
            f"({len(sample) / max(len(ids), 1):.2f} chars/token); round trip "
            + ("exact" if round_trip else "NOT exact"),
        ]
    )
