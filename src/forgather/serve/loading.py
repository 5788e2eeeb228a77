"""Find and load what the server serves: a model directory or its newest checkpoint that fits.

    model, tokenizer = load_for_serving("output_models/tiny_llama", checkpoint=True)
    loaded = load_model_for_serving("output_models/tiny_llama", checkpoint=True)
    loaded.weights, loaded.step      # where the weights came from

A model directory is anything ``AutoModelForCausalLM.from_pretrained`` reads
(a generated Forgather model with its code, or a plain transformers one). A
trainer checkpoint (``.../checkpoint-<step>/``) may hold only weights
(``model.safetensors``, possibly sharded); then the model is built from the
model directory's ``config.json`` and the checkpoint's weights are loaded into
it, so the model directory itself needs no weights.

Decision a reader may question: "newest checkpoint" means the highest step
among the ``checkpoint-<step>`` directories below the model directory whose
weights *fit the model the directory describes* (names and shapes from the
safetensors header against the model built on the meta device;
``forgather.ml.checkpoint_layout``). A checkpoint of another shape left in the
same output directory by an earlier run is skipped with a message rather than
failing the server, and the server says which checkpoint it loaded.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from forgather.ml.checkpoint_layout import (
    INDEX_FILE,
    MODEL_FILE,
    Checkpoint,
    ModelTensors,
    checkpoint_tensors,
    find_checkpoints,
    newest_fitting,
)

_WEIGHT_FILES = (MODEL_FILE, INDEX_FILE, "pytorch_model.bin", "pytorch_model.bin.index.json")
#: The names --dtype accepts (the CLI checks them against this table too).
DTYPES = {
    "auto": "auto",
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "float64": torch.float64,
    "fp64": torch.float64,
    "double": torch.float64,
}
_SAFETENSORS_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
# Config attributes that name the longest sequence a model was built for, by preference.
_CONTEXT_ATTRIBUTES = (
    "max_position_embeddings",
    "max_sequence_length",
    "max_seq_len",
    "n_positions",
    "seq_length",
)
DEFAULT_CONTEXT_LENGTH = 2048


class WeightsNotFound(FileNotFoundError):
    """Nothing to serve where the user pointed; the message says what is missing and what to do."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to serve, and where its weights came from.

    Attributes:
        model: The causal LM, in eval mode on its device.
        tokenizer: Its tokenizer.
        weights: The directory whose weights were loaded (a checkpoint or the model directory).
        step: The checkpoint's step; None for the model directory's own weights.
    """

    model: Any
    tokenizer: Any
    weights: str
    step: int | None = None


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def model_tensors(model: torch.nn.Module) -> ModelTensors:
    """The names and shapes of ``model``'s state dict, and which names share a tensor."""
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    groups: dict[int, set[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), set()).add(name)
    return ModelTensors(shapes, tuple(frozenset(g) for g in groups.values() if len(g) > 1))


def model_dir_tensors(model_dir: str) -> ModelTensors:
    """The tensors of the model ``model_dir/config.json`` describes (built on the meta device).

    Raises:
        WeightsNotFound: ``model_dir`` has no ``config.json``.
    """
    from transformers import AutoConfig, AutoModelForCausalLM

    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise WeightsNotFound(_not_a_model_directory(model_dir))
    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=True)
    except Exception:  # model code that computes with its tensors while built cannot run on meta
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=True)
    return model_tensors(model)


def newest_checkpoint(
    model_dir: str,
    model: ModelTensors | None = None,
    report: Callable[[str], None] = _to_stderr,
) -> str:
    """The ``checkpoint-<step>`` directory with the highest step below ``model_dir`` that fits.

    Args:
        model_dir: The model directory (its runs are searched at any depth).
        model: The model's tensors; None: any checkpoint with weights.
        report: Receives one line per checkpoint passed over, and why.

    Raises:
        WeightsNotFound: If there is none with weights (that fit).
    """
    chosen = _newest_fitting(model_dir, model, report)
    return chosen.path


def _newest_fitting(
    model_dir: str, model: ModelTensors | None, report: Callable[[str], None]
) -> Checkpoint:
    checkpoints = find_checkpoints(model_dir)
    skipped: list[str] = []

    def skip(checkpoint: Checkpoint, why: str) -> None:
        skipped.append(checkpoint.path)
        report(f"skipping {os.path.relpath(checkpoint.path, model_dir)}: {why}")

    chosen = newest_fitting(checkpoints, model, skip)
    if chosen is None:
        if not checkpoints:
            raise WeightsNotFound(
                f"no checkpoint-<step> directory with weights under {model_dir}: "
                "train the model first (checkpoints are saved every save_steps), "
                "or serve the model directory's own weights without -c"
            )
        raise WeightsNotFound(
            f"none of the {len(checkpoints)} checkpoints under {model_dir} has weights that fit "
            f"the model in {os.path.join(model_dir, 'config.json')} (reasons above)"
        )
    return chosen


def _not_a_model_directory(model_dir: str) -> str:
    """Why ``model_dir`` (no config.json) cannot be served, and what to do for an adapter."""
    message = f"{model_dir} is not a model directory: it has no config.json"
    if os.path.isfile(os.path.join(model_dir, "adapter_config.json")):
        message += (
            "; it is a LoRA adapter: merge it into its base model first "
            f"(forgather merge-lora {model_dir} MERGED_DIR) and serve MERGED_DIR"
        )
    return message


def _check_model_weights(model_dir: str) -> None:
    """Raise a one-line :class:`WeightsNotFound` unless ``model_dir`` holds weights to load."""
    if not os.path.isdir(model_dir):
        raise WeightsNotFound(f"no model directory {model_dir}")
    if not os.path.isfile(os.path.join(model_dir, "config.json")):
        raise WeightsNotFound(_not_a_model_directory(model_dir))
    link = os.path.join(model_dir, MODEL_FILE)
    if os.path.islink(link) and not os.path.exists(link):
        raise WeightsNotFound(
            f"{link} links to {os.readlink(link)}, which no longer exists: "
            "run `forgather checkpoint link` again, or serve the newest checkpoint with -c"
        )
    if not any(os.path.exists(os.path.join(model_dir, f)) for f in _WEIGHT_FILES):
        raise WeightsNotFound(
            f"no weights in {model_dir} (no {MODEL_FILE}): train the model first, "
            "link a checkpoint into it (forgather checkpoint link), "
            "or serve its newest checkpoint with -c"
        )


def _saved_dtype(checkpoint_dir: str) -> torch.dtype:
    """The floating dtype most of a checkpoint's tensors were saved in (from the header)."""
    counts = Counter(dtype for dtype, _shape in checkpoint_tensors(checkpoint_dir).values())
    floating = [d for d, _n in counts.most_common() if d in _SAFETENSORS_DTYPES]
    return _SAFETENSORS_DTYPES[floating[0]] if floating else torch.float32


def _load_checkpoint_weights(model: torch.nn.Module, checkpoint_dir: str,
                             weights_file: str | None = None) -> None:  # fmt: skip
    """Load a weights-only checkpoint into ``model`` (a tied tensor may be stored under one name).

    Args:
        model: The model (its shapes were checked against the checkpoint, or are checked here).
        checkpoint_dir: A directory holding ``model.safetensors`` or a sharded index.
        weights_file: Load this one ``.safetensors`` file instead.

    Raises:
        ValueError: The names or shapes do not match.
    """
    from safetensors.torch import load_file

    index_file = os.path.join(checkpoint_dir, INDEX_FILE)
    if weights_file is not None:
        shards = [weights_file]
    elif os.path.exists(index_file):
        with open(index_file, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = [MODEL_FILE]
    state: dict[str, torch.Tensor] = {}
    for shard in shards:
        state.update(load_file(os.path.join(checkpoint_dir, shard)))
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    wrong = [f"{n} {tuple(t.shape)} (model: {shapes[n]})" for n, t in state.items()
             if n in shapes and tuple(t.shape) != shapes[n]]  # fmt: skip
    if wrong:
        raise ValueError(f"the weights in {checkpoint_dir} do not fit the model: {wrong[:3]}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    group_of = {name: group for group in model_tensors(model).tied for name in group}
    really_missing = [n for n in missing if not (group_of.get(n, set()) & state.keys())]
    if really_missing or unexpected:
        raise ValueError(
            f"checkpoint {checkpoint_dir} does not match the model: missing {really_missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )


def load_weights_into(model: torch.nn.Module, path: str) -> None:
    """Load saved weights into a built model, every tensor (``model --load-from-checkpoint``).

    Args:
        model: The model, on a real device.
        path: A checkpoint or model directory (``model.safetensors`` or a
            sharded index), or one ``.safetensors`` file.

    Raises:
        FileNotFoundError: ``path`` holds no safetensors weights.
        ValueError: The weights do not fit the model (names or shapes).
    """
    if os.path.isfile(path) and path.endswith(".safetensors"):
        _load_checkpoint_weights(model, os.path.dirname(path) or ".", os.path.basename(path))
        return
    if not any(os.path.exists(os.path.join(path, name)) for name in (MODEL_FILE, INDEX_FILE)):
        raise FileNotFoundError(
            f"{path} holds no {MODEL_FILE} or {INDEX_FILE} (give a checkpoint-<step> directory, "
            "a model directory or a .safetensors file)"
        )
    _load_checkpoint_weights(model, path)


def _checkpoint_at(path: str, model_dir: str) -> Checkpoint:
    """The checkpoint directory ``path`` names (``-c PATH``), checked against ``model_dir``."""
    if not os.path.isdir(path):
        raise WeightsNotFound(f"-c {path}: no such checkpoint directory")
    tail = os.path.basename(os.path.normpath(path)).rsplit("-", 1)[-1]
    checkpoint = Checkpoint(path=path, step=int(tail) if tail.isdigit() else -1)
    if not checkpoint.has_weights:
        raise WeightsNotFound(f"-c {path}: it holds no {MODEL_FILE} or {INDEX_FILE}")
    problems: list[str] = []
    fits = newest_fitting(
        [checkpoint], model_dir_tensors(model_dir), lambda c, why: problems.append(why)
    )
    if fits is None:
        raise WeightsNotFound(f"-c {path}: {problems[0] if problems else 'it does not fit'}")
    return checkpoint


def load_model_for_serving(
    path: str,
    checkpoint: bool | str = False,
    device: str = "cpu",
    dtype: str = "auto",
    chat_template_file: str | None = None,
    report: Callable[[str], None] = _to_stderr,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load a causal LM and its tokenizer, ready for inference, and say where from.

    Args:
        path: The model directory.
        checkpoint: True: load the newest checkpoint below ``path`` that fits
            the model (see :func:`newest_checkpoint`); a path: that checkpoint
            directory (checked against the model the same way).
        device: ``cpu``, ``cuda``, ``cuda:1``, ...; ``auto``: ``cuda`` when available.
        dtype: ``auto`` (as saved), ``float32``, ``bfloat16`` or ``float16``
            (or ``fp32``, ``bf16``, ``fp16``, ``half``, ``float64``/``double``).
        chat_template_file: A Jinja chat template replacing the tokenizer's.
        report: Receives a line for each checkpoint passed over.
        attn_implementation: ``eager``, ``sdpa``, ...; None: transformers' choice.

    Raises:
        ValueError: For an unknown dtype.
        WeightsNotFound: No weights in ``path`` (or no checkpoint that fits, with ``checkpoint``).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose from {sorted(DTYPES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    options: dict[str, Any] = {"trust_remote_code": True}
    if attn_implementation is not None:
        options["attn_implementation"] = attn_implementation
    step = None
    if not checkpoint:
        _check_model_weights(path)
        weights_dir = path
        model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype], **options)
    else:
        if isinstance(checkpoint, str):
            chosen = _checkpoint_at(checkpoint, path)
        else:
            chosen = _newest_fitting(path, model_dir_tensors(path), report)
        weights_dir = chosen.path
        step = chosen.step if chosen.step >= 0 else None
        if os.path.exists(os.path.join(weights_dir, "config.json")):  # a self-contained save
            model = AutoModelForCausalLM.from_pretrained(
                weights_dir, dtype=DTYPES[dtype], **options
            )
        else:
            config = AutoConfig.from_pretrained(path, trust_remote_code=True)
            torch_dtype = _saved_dtype(weights_dir) if dtype == "auto" else DTYPES[dtype]
            model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype, **options)
            _load_checkpoint_weights(model, weights_dir)
    has_tokenizer = os.path.exists(os.path.join(weights_dir, "tokenizer_config.json"))
    tokenizer = AutoTokenizer.from_pretrained(
        weights_dir if has_tokenizer else path, trust_remote_code=True
    )
    if chat_template_file is not None:
        with open(chat_template_file, encoding="utf-8") as f:
            tokenizer.chat_template = f.read()
    return LoadedModel(model.to(device).eval(), tokenizer, weights_dir, step)


def load_for_serving(
    path: str,
    checkpoint: bool = False,
    device: str = "cpu",
    dtype: str = "auto",
    chat_template_file: str | None = None,
) -> tuple[Any, Any]:
    """(model, tokenizer) of :func:`load_model_for_serving`."""
    loaded = load_model_for_serving(path, checkpoint, device, dtype, chat_template_file)
    return loaded.model, loaded.tokenizer


def context_length(model: Any, tokenizer: Any) -> int:
    """The longest sequence (prompt + completion) the model accepts, in tokens."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
    for attribute in _CONTEXT_ATTRIBUTES:
        value = getattr(config or model.config, attribute, None)
        if isinstance(value, int) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    # Tokenizers without a limit report a huge sentinel (int(1e30)).
    if isinstance(limit, int) and 0 < limit < 1_000_000:
        return limit
    return DEFAULT_CONTEXT_LENGTH
