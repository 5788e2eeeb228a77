"""The original Forgather's vocabulary helpers, as thin adapters over :mod:`.vocab`.

    num_added, token_inits = add_tokens_to_tokenizer(tokenizer, "tokens.yaml")
    resize_word_embeddings(model, tokenizer, token_inits)
    update_config_from_tokenizer(model.config, tokenizer, update_vocab_size=True)

New code calls :func:`forgather.ml.model_conversion.vocab.update_vocabulary`,
which does all three. Decision a reader may question: ``token_inits`` maps
token ids to strategies as in the original, so notebooks that inspect it keep
working, but the rows are initialised exactly (mean or zero, see ``vocab.py``).
"""

from __future__ import annotations

from .vocab import (
    DEFAULT_TOKEN_SPEC,
    VocabReport,
    _apply_to_tokenizer,
    _initialise_rows,
    parse_token_spec,
)

DEFAULT_TOKEN_CONFIG = DEFAULT_TOKEN_SPEC


def add_tokens_to_tokenizer(tokenizer, path_or_config) -> tuple[int, dict[int, str]]:
    """Add the tokens of a spec (YAML path or dict) to ``tokenizer``.

    Returns:
        (number of tokens new to the vocabulary, token id -> "mean" | "zero" | "copy:<id>").
    """
    report = VocabReport()
    inits = _apply_to_tokenizer(tokenizer, parse_token_spec(path_or_config), report)
    vocab = tokenizer.get_vocab()
    return len(report.added), {vocab[token]: how for token, how in inits.items()}


def resize_word_embeddings(model, tokenizer, token_inits: dict[int, str] | None) -> None:
    """Resize ``model``'s embeddings to ``len(tokenizer)`` and initialise the given rows."""
    old_size = model.get_input_embeddings().weight.shape[0]
    new_size = max(len(tokenizer), old_size)
    if new_size != old_size:
        model.resize_token_embeddings(new_size, mean_resizing=False)
    rows = {row: "zero" for row in range(old_size, new_size)}
    rows.update({row: how for row, how in (token_inits or {}).items()})
    _initialise_rows(model, rows, old_size)


def update_config_from_tokenizer(
    model_config, tokenizer, *, update_vocab_size: bool = False
) -> None:
    """Copy the tokenizer's bos/eos/pad ids (and, if asked, its size) into ``model_config``."""
    for key in ("bos_token_id", "pad_token_id", "eos_token_id"):
        value = getattr(tokenizer, key, None)
        if value is not None:
            setattr(model_config, key, value)
    if update_vocab_size:
        model_config.vocab_size = max(len(tokenizer), model_config.vocab_size)
