"""Convert a model directory Hugging Face -> Forgather or back, and prove it is the same model.

    result = convert_model("~/models/qwen3", "output_models/qwen3_fg", dtype="bfloat16")
    print(result.max_abs_diff)

Hugging Face -> Forgather writes a regular generated model directory
(``forgather.ml.model.write_model`` with a builder from ``builders.py``),
then the converted weights, tokenizer and generation config. Forgather ->
Hugging Face reads the architecture from the Forgather model's modules
(``architectures.hf_config_for``) and saves a native transformers model.

Either way the result is written to a hidden directory next to the
destination, loaded back from disk and run on the same tokens as the source;
only when the logits agree (and, for a Forgather result, the vLLM plans
validate) is it renamed into place. A mismatch raises
:class:`LogitMismatchError` and leaves nothing behind.

Decision a reader may question: the check runs in float32 on weights already
rounded to the output dtype (the source is loaded in that dtype, then both
models are upcast), so the tolerance can stay tight (1e-4 relative to the
largest logit) for every dtype: it measures the conversion, not bfloat16.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from forgather.ml.file_modes import share_weights

from .architectures import (
    HF_FAMILIES,
    UnsupportedFeatureError,
    forgather_hyperparameters,
    hf_config_for,
)
from .builders import BUILDERS
from .hf_weights import (
    convert_gpt2_state_dict,
    convert_llama_state_dict,
    gpt2_state_dict_from_forgather,
    llama_state_dict_from_forgather,
)

logger = logging.getLogger(__name__)

DEFAULT_PROMPT = "The old bookstore at the corner of"
DEFAULT_TOLERANCE = 1e-4


class LogitMismatchError(RuntimeError):
    """The converted model's logits differ from the source's."""


@dataclass
class ConversionResult:
    """What a conversion produced and how closely it matches its source."""

    direction: str  # "hf_to_forgather" or "forgather_to_hf"
    model_type: str  # the Hugging Face model_type
    output_dir: Path
    dtype: str
    max_abs_diff: float
    tolerance: float
    generated: dict[str, str] = field(default_factory=dict)  # -g: label -> text
    dry_run: bool = False


def is_forgather_model(model_dir: str | Path) -> bool:
    """True if ``model_dir``'s ``config.json`` names Forgather-generated classes."""
    config = _read_config(model_dir)
    return str(config.get("model_type", "")).startswith("forgather_") or any(
        str(v).startswith("modeling_") for v in (config.get("auto_map") or {}).values()
    )


def check_reversible(model_dir: str | Path) -> None:
    """Refuse ``--reverse`` (Forgather -> Hugging Face) for a plain Hugging Face model.

    A directory with generated code (``auto_map``) or a ``forgather*`` model type may be
    one, the original Forgather's included; one with neither is a Hugging Face model.

    Raises:
        ValueError: ``model_dir`` is a plain Hugging Face model.
    """
    config = _read_config(model_dir)
    if not (config.get("auto_map") or str(config.get("model_type", "")).startswith("forgather")):
        raise ValueError(
            f"--reverse converts a Forgather model to Hugging Face, but {model_dir} is a "
            f"Hugging Face model ({config.get('model_type')!r}); without --reverse it is "
            "converted to Forgather"
        )


def _read_config(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{model_dir} has no config.json: not a model directory")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def _dtype(name: str | torch.dtype | None, config: Mapping[str, Any]) -> torch.dtype:
    if isinstance(name, torch.dtype):
        return name
    name = name or config.get("dtype") or config.get("torch_dtype") or "float32"
    dtype = getattr(torch, str(name).removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype


def _load_tokenizer(model_dir: Path, chat_template_path: str | None):
    from transformers import AutoTokenizer

    files = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    if not any((model_dir / f).is_file() for f in files):
        if chat_template_path:
            raise ValueError(f"{model_dir} has no tokenizer to give the chat template to")
        logger.info("no tokenizer in %s; converting the weights only", model_dir)
        return None
    try:
        # A Forgather directory's config names remote code; the tokenizer itself is plain.
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    except (OSError, ValueError, TypeError) as err:
        if chat_template_path:
            raise ValueError(
                f"{model_dir} has no loadable tokenizer for the chat template: {err}"
            ) from err
        logger.info("no tokenizer in %s (%s); converting the weights only", model_dir, err)
        return None
    if chat_template_path:
        tokenizer.chat_template = Path(chat_template_path).read_text()
    return tokenizer


def _test_ids(
    vocab_size: int, max_positions: int | None, window: int | None = None
) -> torch.Tensor:
    """Two rows of seeded random tokens, longer than a sliding window when there is one."""
    length = 32 if not window else max(32, window + 8)
    if max_positions:
        length = min(length, max_positions)
    return torch.randint(0, vocab_size, (2, length), generator=torch.Generator().manual_seed(0))


def compare_logits(
    reference: torch.nn.Module,
    candidate: torch.nn.Module,
    input_ids: torch.Tensor,
    tolerance: float = DEFAULT_TOLERANCE,
    device: str = "cpu",
) -> float:
    """Max |logits difference| of two models on ``input_ids`` (over the shared vocabulary).

    Raises:
        LogitMismatchError: If it exceeds ``tolerance`` times the largest |logit| (at least 1).
    """
    with torch.no_grad():
        expected = reference.to(device).eval()(input_ids=input_ids.to(device)).logits.float().cpu()
        actual = candidate.to(device).eval()(input_ids=input_ids.to(device)).logits.float().cpu()
    vocab = min(expected.shape[-1], actual.shape[-1])
    expected, actual = expected[..., :vocab], actual[..., :vocab]
    diff = (expected - actual).abs().max().item()
    scale = max(1.0, expected.abs().max().item())
    if not diff <= tolerance * scale:  # also catches NaN
        raise LogitMismatchError(
            f"converted model's logits differ from the source's: max abs diff {diff:.3g} > "
            f"{tolerance:g} x {scale:.3g} (largest |logit|); the conversion is wrong"
        )
    return diff


def _generate(model, tokenizer, prompt: str, device: str) -> tuple[list[int], str]:
    ids = tokenizer(prompt, return_tensors="pt").input_ids.to(device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        out = model.to(device).generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=pad)
    new = out[0, ids.shape[1] :].tolist()
    return new, tokenizer.decode(new)


def _generation_test(source, converted, tokenizer, prompt: str, device: str) -> dict[str, str]:
    if tokenizer is None:
        raise ValueError("the generation test needs a tokenizer in the source directory")
    source_ids, source_text = _generate(source, tokenizer, prompt, device)
    converted_ids, converted_text = _generate(converted, tokenizer, prompt, device)
    if source_ids != converted_ids:
        raise LogitMismatchError(
            f"greedy generation differs: source {source_text!r}, converted {converted_text!r}"
        )
    return {"source": source_text, "converted": converted_text}


def _copy_generation_config(src: Path, dst: Path) -> None:
    path = src / "generation_config.json"
    if path.is_file():
        shutil.copyfile(path, dst / "generation_config.json")


def _staging_dir(dst: Path) -> Path:
    if dst.exists():
        raise FileExistsError(f"{dst} already exists; will not overwrite")
    if not dst.parent.is_dir():
        raise FileNotFoundError(f"the destination's directory {dst.parent} does not exist")
    # Not mkdtemp, which makes it 0700: the model directory should be as readable as any the
    # user makes (by a vLLM container, another account), so os.mkdir applies the umask.
    while True:
        staging = dst.parent / f".{dst.name}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


def _finish(staging: Path, dst: Path, dry_run: bool) -> None:
    if dry_run:
        shutil.rmtree(staging)
    else:
        share_weights(staging)
        staging.rename(dst)


def hf_to_forgather(
    src: str | Path,
    dst: str | Path,
    *,
    dtype: str | torch.dtype | None = None,
    max_length: int | None = None,
    name: str | None = None,
    chat_template_path: str | None = None,
    device: str = "cpu",
    tolerance: float = DEFAULT_TOLERANCE,
    generation_test: bool = False,
    prompt: str = DEFAULT_PROMPT,
    dry_run: bool = False,
) -> ConversionResult:
    """Convert a Hugging Face model directory into a Forgather generated model directory.

    Args:
        src: A transformers model directory (Llama, Mistral, Qwen2, Qwen3, GPT-2).
        dst: The new directory (must not exist).
        dtype: Weights' dtype; default the source config's, else float32.
        max_length: ``max_position_embeddings`` of the result.
        name: Model name (class prefix); default the directory's name.
        chat_template_path: A Jinja chat template file for the tokenizer.
        device: Where the logit check (and generation test) runs.
        tolerance: Allowed max |logit diff| relative to the largest |logit|.
        generation_test: Also compare greedy generation from ``prompt``.
        prompt: Prompt of the generation test.
        dry_run: Check everything, keep nothing.

    Returns:
        The :class:`ConversionResult`.

    Raises:
        UnsupportedFeatureError: The model has a feature Forgather's components lack.
        LogitMismatchError: The converted model computes something else.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    from forgather.ml.model import load_model, write_model

    from .vllm_plans import validate_vllm_plans

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    hf_config = AutoConfig.from_pretrained(src)
    family, hyperparameters = forgather_hyperparameters(hf_config, max_length)
    out_dtype = _dtype(dtype, _read_config(src))
    tokenizer = _load_tokenizer(src, chat_template_path)
    staging = _staging_dir(dst)
    try:
        source = AutoModelForCausalLM.from_pretrained(
            src, dtype=out_dtype, attn_implementation="eager"
        )
        state = source.state_dict()
        if family == "gpt2":
            state = convert_gpt2_state_dict(state)
            positions = "model.input_encoder.positional_encoder.embedding.weight"
            state[positions] = state[positions][: hyperparameters["max_position_embeddings"]]
        else:
            state = convert_llama_state_dict(state)
        write_model(
            staging,
            BUILDERS[family],
            name=name or dst.name,
            hyperparameters={**hyperparameters, "dtype": str(out_dtype).removeprefix("torch.")},
            tokenizer=tokenizer,
            source_name=f"Hugging Face {hf_config.model_type} ({src.name})",
        )
        model = load_model(staging, device="meta", dtype=out_dtype)
        model.load_state_dict(state, strict=True, assign=True)
        model.tie_weights()
        model.save_pretrained(staging)
        _copy_generation_config(src, staging)
        del model, state
        converted = load_model(staging, dtype=torch.float32, attn_implementation="eager")
        source = source.float()
        ids = _test_ids(hyperparameters["vocab_size"], hyperparameters["max_position_embeddings"],
                        hyperparameters.get("sliding_window"))  # fmt: skip
        diff = compare_logits(source, converted, ids, tolerance, device)
        generated = (
            _generation_test(source, converted, tokenizer, prompt, device)
            if generation_test
            else {}
        )
        validate_vllm_plans(converted)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _finish(staging, dst, dry_run)
    return ConversionResult(
        "hf_to_forgather", hf_config.model_type, dst, str(out_dtype).removeprefix("torch."),
        diff, tolerance, generated, dry_run,
    )  # fmt: skip


def _load_checkpoint_weights(model: torch.nn.Module, checkpoint: Path) -> None:
    from safetensors.torch import load_file

    index = checkpoint / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (checkpoint / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{checkpoint} holds no model.safetensors")
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(load_file(checkpoint / file))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # A tied head is saved once, under either name.
    missing = [
        k for k in missing if not (k == "lm_head.weight" and model.config.tie_word_embeddings)
    ]
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint} does not fit the model: missing {missing}, unexpected {unexpected}"
        )
    model.tie_weights()


def forgather_to_hf(
    src: str | Path,
    dst: str | Path,
    *,
    dtype: str | torch.dtype | None = None,
    max_length: int | None = None,
    model_type: str | None = None,
    checkpoint_path: str | Path | None = None,
    chat_template_path: str | None = None,
    device: str = "cpu",
    tolerance: float = DEFAULT_TOLERANCE,
    generation_test: bool = False,
    prompt: str = DEFAULT_PROMPT,
    dry_run: bool = False,
) -> ConversionResult:
    """Convert a Forgather model directory into a native Hugging Face one.

    Args:
        src: A Forgather generated model directory with weights (or give ``checkpoint_path``).
        dst: The new directory (must not exist).
        model_type: Target architecture; default the one recorded at conversion,
            else the one the modules match.
        checkpoint_path: A ``checkpoint-<step>`` directory whose weights to convert;
            default the model directory's own weights, else its newest checkpoint.
        Others: as :func:`hf_to_forgather`.

    Returns:
        The :class:`ConversionResult`.
    """
    from transformers import AutoModelForCausalLM

    from forgather.ml.checkpoint_layout import find_checkpoints
    from forgather.ml.model import has_weights, load_model

    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    out_dtype = _dtype(dtype, _read_config(src))
    if checkpoint_path is None and not has_weights(src):
        found = [c for c in find_checkpoints(str(src)) if c.has_weights]
        if not found:
            raise FileNotFoundError(
                f"{src} has no weights and no checkpoints; give --checkpoint-path"
            )
        checkpoint_path = found[0].path
        logger.info("converting the newest checkpoint, %s", checkpoint_path)
    if checkpoint_path is not None:
        source = load_model(src, dtype=out_dtype, attn_implementation="eager", from_weights=False)
        _load_checkpoint_weights(source, Path(checkpoint_path).expanduser())
    else:
        source = load_model(src, dtype=out_dtype, attn_implementation="eager")
    hf_config = hf_config_for(source, model_type, max_length)
    tokenizer = _load_tokenizer(src, chat_template_path)
    state = source.state_dict()
    if HF_FAMILIES[hf_config.model_type] == "gpt2":
        state = gpt2_state_dict_from_forgather(state)
    else:
        state = llama_state_dict_from_forgather(state)
    staging = _staging_dir(dst)
    try:
        target = AutoModelForCausalLM.from_config(hf_config, dtype=out_dtype)
        target.load_state_dict(state, strict=True)
        target.tie_weights()
        target.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        _copy_generation_config(src, staging)
        del target, state
        converted = AutoModelForCausalLM.from_pretrained(
            staging, dtype=torch.float32, attn_implementation="eager"
        )
        source = source.float()
        window = getattr(hf_config, "sliding_window", None)
        ids = _test_ids(
            hf_config.vocab_size, getattr(hf_config, "max_position_embeddings", None), window
        )
        diff = compare_logits(source, converted, ids, tolerance, device)
        generated = (
            _generation_test(source, converted, tokenizer, prompt, device)
            if generation_test
            else {}
        )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _finish(staging, dst, dry_run)
    return ConversionResult(
        "forgather_to_hf", hf_config.model_type, dst, str(out_dtype).removeprefix("torch."),
        diff, tolerance, generated, dry_run,
    )  # fmt: skip


def convert_model(
    src: str | Path, dst: str | Path, *, reverse: bool = False, **options
) -> ConversionResult:
    """Convert in the direction the source calls for: a Forgather directory goes to Hugging Face.

    Args:
        src: Source model directory.
        dst: New directory.
        reverse: Force Forgather -> Hugging Face.
        **options: As :func:`hf_to_forgather` / :func:`forgather_to_hf`.
    """
    if reverse:
        check_reversible(src)
    if reverse or is_forgather_model(src):
        return forgather_to_hf(src, dst, **options)
    for key in ("model_type", "checkpoint_path"):
        if options.pop(key, None) is not None:
            logger.warning("%s applies to Forgather -> Hugging Face only; ignored", key)
    return hf_to_forgather(src, dst, **options)


__all__ = [
    "ConversionResult",
    "LogitMismatchError",
    "UnsupportedFeatureError",
    "compare_logits",
    "convert_model",
    "forgather_to_hf",
    "hf_to_forgather",
    "is_forgather_model",
]
