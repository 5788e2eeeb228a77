"""Add tokens to a model's vocabulary: tokenizer, embedding rows and config ids together.

    changes = parse_token_spec({"pad_token": {"token": "<|pad|>", "init": "zero"},
                                "special_tokens": ["<|im_start|>", "<|im_end|>"]})
    report = update_vocabulary(model, tokenizer, changes)

A token spec (YAML file or dict, the original Forgather's ``--add-tokens``
format) names ``bos_token``/``eos_token``/``pad_token``/``unk_token`` (a
string, or ``{token, init, if_missing}``), ``special_tokens`` and
``regular_tokens``. New embedding rows start as the mean of the existing rows
(``mean``, the default) or as zeros (``zero``, the default for padding); a
named token replaced by one new to the vocabulary copies the old token's row.
The model's ``vocab_size`` and its ``bos/eos/pad_token_id`` (config and
generation config) follow the tokenizer.

Decision a reader may question: rows are initialised here, after
transformers' ``resize_token_embeddings(..., mean_resizing=False)``, rather
than by its mean resizing, which samples from a distribution around the mean
(random, and slow for large vocabularies): a row initialised here is exactly
the mean or zero, and the same on every run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from forgather.ml.file_modes import share_weights

logger = logging.getLogger(__name__)

NAMED_TOKENS = ("bos_token", "eos_token", "pad_token", "unk_token")
INIT_STRATEGIES = ("mean", "zero")
#: What ``update-vocab`` adds when given no spec: a zero-initialised pad token, if missing.
DEFAULT_TOKEN_SPEC = {"pad_token": {"token": "[PAD]", "init": "zero", "if_missing": True}}


@dataclass
class NamedToken:
    """One of ``bos_token``, ``eos_token``, ``pad_token``, ``unk_token`` to set."""

    role: str
    token: str
    init: str
    if_missing: bool = False


@dataclass
class TokenSpec:
    """The vocabulary changes to make."""

    named: list[NamedToken] = field(default_factory=list)
    special: list[str] = field(default_factory=list)
    regular: list[str] = field(default_factory=list)
    init: str = "mean"  # for special and regular tokens


@dataclass
class VocabReport:
    """What :func:`update_vocabulary` changed."""

    added: list[str] = field(default_factory=list)
    set_roles: dict[str, str] = field(default_factory=dict)  # role -> token
    old_vocab_size: int = 0
    new_vocab_size: int = 0
    initialised: dict[int, str] = field(default_factory=dict)  # row -> how


def parse_token_spec(spec: str | Path | dict[str, Any] | None) -> TokenSpec:
    """Read a token spec from a YAML file path or a dict.

    Raises:
        ValueError: For an unknown key, init strategy or malformed entry.
    """
    if spec is None:
        return TokenSpec()
    if isinstance(spec, (str, Path)):
        import yaml

        spec = yaml.safe_load(Path(spec).expanduser().read_text()) or {}
    if not isinstance(spec, dict):
        raise ValueError(f"a token spec must be a mapping, got {type(spec).__name__}")
    unknown = set(spec) - {*NAMED_TOKENS, "special_tokens", "regular_tokens", "init"}
    if unknown:
        raise ValueError(f"unknown token spec key(s): {', '.join(sorted(unknown))}")
    result = TokenSpec(
        special=token_list(spec, "special_tokens"),
        regular=token_list(spec, "regular_tokens"),
        init=spec.get("init", "mean"),
    )
    for role in NAMED_TOKENS:
        entry = spec.get(role)
        if entry is None:
            continue
        default_init = "zero" if role == "pad_token" else "mean"
        if isinstance(entry, str):
            entry = {"token": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise ValueError(
                f"{role}: give a token string or {{token: ..., init: ..., if_missing: ...}}"
            )
        result.named.append(
            NamedToken(
                role, entry["token"], entry.get("init", default_init), bool(entry.get("if_missing"))
            )
        )
    for init in [result.init, *(n.init for n in result.named)]:
        if init not in INIT_STRATEGIES:
            raise ValueError(f"unknown init {init!r} (use one of {', '.join(INIT_STRATEGIES)})")
    return result


def _apply_to_tokenizer(tokenizer, spec: TokenSpec, report: VocabReport) -> dict[str, str]:
    """Add tokens; returns token -> init ("mean", "zero" or "copy:<id>") for rows to initialise."""
    inits: dict[str, str] = {}
    vocab = tokenizer.get_vocab()
    roles: dict[str, str] = {}
    for named in spec.named:
        current = getattr(tokenizer, named.role, None)
        if current is not None and (named.if_missing or current == named.token):
            continue
        roles[named.role] = named.token
        if named.token not in vocab:
            # Replacing a token keeps its meaning: the new row starts as the old one.
            old_id = getattr(tokenizer, f"{named.role}_id", None) if current is not None else None
            inits[named.token] = f"copy:{old_id}" if old_id is not None else named.init
    if roles:
        tokenizer.add_special_tokens(roles)
        report.set_roles.update(roles)
    existing_special = set(getattr(tokenizer, "all_special_tokens", []))
    new_special = [t for t in spec.special if t not in existing_special]
    if new_special:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": new_special}, replace_extra_special_tokens=False
        )
    new_regular = [t for t in spec.regular if t not in tokenizer.get_vocab()]
    if new_regular:
        tokenizer.add_tokens(new_regular)
    for token in [*new_special, *new_regular]:
        if token not in vocab:
            inits.setdefault(token, spec.init)
    report.added = [t for t in inits if t not in vocab]
    return inits


def _initialise_rows(model, rows: dict[int, str], old_size: int) -> None:
    embeddings = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not embeddings[0]:
        embeddings.append(output.weight)
    with torch.no_grad():
        for weight in embeddings:
            mean = weight[:old_size].float().mean(dim=0).to(weight.dtype)
            for row, how in rows.items():
                if how == "zero":
                    weight[row].zero_()
                elif how == "mean":
                    weight[row].copy_(mean)
                else:  # copy:<id>
                    weight[row].copy_(weight[int(how.split(":", 1)[1])])


def update_vocabulary(model, tokenizer, spec: TokenSpec) -> VocabReport:
    """Apply ``spec`` to ``tokenizer`` and ``model`` (resized, rows initialised, ids fixed).

    Args:
        model: A transformers causal LM (Hugging Face or Forgather).
        tokenizer: Its tokenizer, modified in place.
        spec: From :func:`parse_token_spec`.

    Returns:
        A :class:`VocabReport`.
    """
    old_size = model.get_input_embeddings().weight.shape[0]
    report = VocabReport(old_vocab_size=old_size, new_vocab_size=old_size)
    inits = _apply_to_tokenizer(tokenizer, spec, report)
    new_size = max(len(tokenizer), old_size)
    if new_size != old_size:
        model.resize_token_embeddings(new_size, mean_resizing=False)
        report.new_vocab_size = new_size
    vocab = tokenizer.get_vocab()
    # Rows of tokens new to the tokenizer were unused, even inside the old matrix.
    rows = {vocab[token]: how for token, how in inits.items()}
    # A row past the old matrix that no token asked for (len(tokenizer) grew by more) is zero.
    rows.update({row: "zero" for row in range(old_size, new_size) if row not in rows})
    _initialise_rows(model, rows, old_size)
    report.initialised = dict(sorted(rows.items()))
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, key, None)
        if value is None:
            continue
        current = getattr(model.config, key, None)
        if isinstance(current, list):  # several end tokens (Llama 3): keep them all
            value = current if value in current else [value, *current]
        setattr(model.config, key, value)
        if getattr(model, "generation_config", None) is not None:
            setattr(model.generation_config, key, value)
    model.config.vocab_size = report.new_vocab_size
    return report


def update_vocab(
    model_path: str | Path,
    output_path: str | Path,
    spec: TokenSpec,
    *,
    dtype: str | None = None,
    device: str = "cpu",
    dry_run: bool = False,
) -> VocabReport:
    """Load a model directory, update its vocabulary and save it to ``output_path``.

    Works on Hugging Face and Forgather directories alike (a Forgather one
    keeps its code files). Before saving, the updated model must give the old
    logits on the old vocabulary, a check that the resize touched nothing else.

    Args:
        model_path: Model directory with a tokenizer.
        output_path: New directory (must not exist).
        spec: From :func:`parse_token_spec`.
        dtype: Load (and save) in this dtype; default the checkpoint's.
        device: Where to run the check.
        dry_run: Report what would change, save nothing.

    Returns:
        The :class:`VocabReport`.
    """
    import shutil

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .convert import LogitMismatchError, _staging_dir, is_forgather_model

    model_path, output_path = Path(model_path).expanduser(), Path(output_path).expanduser()
    remote = is_forgather_model(model_path)
    options = {"trust_remote_code": remote}
    if dtype:
        options["dtype"] = getattr(torch, dtype)
    model = AutoModelForCausalLM.from_pretrained(model_path, **options).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=remote)
    old_vocab = model.get_input_embeddings().weight.shape[0]
    # Token ids the tokenizer already had, whose rows stay as they are.
    ids = torch.randint(
        0, min(old_vocab, len(tokenizer)), (1, 16), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        before = model(input_ids=ids).logits
    report = update_vocabulary(model, tokenizer, spec)
    staging = _staging_dir(output_path)
    try:
        kept = [i for i in range(old_vocab) if i not in report.initialised]
        with torch.no_grad():
            after = model.to(device)(input_ids=ids.to(device)).logits.cpu()[..., kept]
        diff = (after.float() - before[..., kept].float()).abs().max().item()
        if not diff <= 1e-4 * max(1.0, before.abs().max().item()):
            raise LogitMismatchError(
                f"the vocabulary update changed the old logits (max diff {diff:.3g})"
            )
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if remote:  # the generated code; save_pretrained copies only the modeling module
            for source in model_path.glob("*.py"):
                shutil.copyfile(source, staging / source.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if dry_run:
        shutil.rmtree(staging)
    else:
        share_weights(staging)
        staging.rename(output_path)
    return report


def token_list(spec: dict, key: str) -> list[str]:
    """``spec[key]`` as a list of token strings (a bare string would split into characters)."""
    value = spec.get(key) or []
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise ValueError(
            f"{key} must be a list of non-empty strings, got {value!r} "
            f'(one token is written as a list too: {key}: ["<|tok|>"])'
        )
    return list(value)
