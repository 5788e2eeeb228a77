"""Write a model's standalone Hugging Face directory (``output_models/<name>/``).

``write_model`` turns a builder (the Python source of ``construct()``,
generated from the model config) into a directory that loads with
``AutoModelForCausalLM.from_pretrained(dir, trust_remote_code=True)`` where
Forgather is not installed: the component sources the builder uses,
``modeling_<name>.py``, ``configuration_<name>.py``, ``config.json``
(with ``auto_map``) and, when given, the tokenizer's files.

Decision a reader may question: every file is rendered in memory first and
written only if its content differs from what is on disk, so regenerating an
unchanged config touches nothing (timestamps, weights and training runs stay
valid), and a changed one is reported file by file. ``config.json`` is
compared by the keys Forgather owns, because ``save_pretrained`` rewrites the
file with extra bookkeeping keys after training.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import sys
import tempfile
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .generated_files import (
    ModelNames,
    builder_parameters,
    config_json,
    json_text,
    model_names,
    render_configuration,
    render_modeling,
    strip_module_docstring,
)
from .plans import plans_for
from .sources import component_closure, modelsrc_dir

logger = logging.getLogger(__name__)

#: Hyperparameters every generated config carries (vLLM and transformers read them).
REQUIRED_HYPERPARAMETERS = ("vocab_size", "hidden_size", "num_attention_heads", "num_hidden_layers")


@dataclass
class WriteResult:
    """What :func:`write_model` did."""

    output_dir: Path
    names: ModelNames
    written: list[str] = field(default_factory=list)  # files created or changed
    unchanged: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.written)


def complete_hyperparameters(
    builder_source: str, hyperparameters: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The builder's defaults overridden by ``hyperparameters``, plus derived HF fields.

    Raises:
        ValueError: If a builder parameter without default or a required
            field (:data:`REQUIRED_HYPERPARAMETERS`) has no value.
    """
    defaults, required = builder_parameters(builder_source)
    values = {**defaults, **(hyperparameters or {})}
    missing = [k for k in (*required, *REQUIRED_HYPERPARAMETERS) if k not in values]
    if missing:
        raise ValueError(f"no value for model hyperparameter(s) {', '.join(sorted(set(missing)))}")
    values.setdefault("num_key_value_heads", values["num_attention_heads"])
    values.setdefault("head_dim", values["hidden_size"] // values["num_attention_heads"])
    values.setdefault("tie_word_embeddings", False)
    values.setdefault("use_cache", True)
    return dict(sorted(values.items()))


def default_plans(
    builder_source: str, components: Mapping[str, str], hyperparameters: Mapping[str, Any]
) -> tuple[dict, dict]:
    """Default TP/PP plans for this builder, keeping only entries that match its modules.

    The builder runs from a scratch package holding copies of its components,
    and builds on the ``meta`` device, so this allocates no weights.
    """
    with tempfile.TemporaryDirectory(prefix="forgather_builder_") as scratch:
        for filename, text in components.items():
            (Path(scratch) / filename).write_text(text)
        (Path(scratch) / "_builder.py").write_text(builder_source)
        package = f"_forgather_builder_{hashlib.sha256(scratch.encode()).hexdigest()[:12]}"
        sys.modules[package] = types.ModuleType(package)
        sys.modules[package].__path__ = [scratch]
        try:
            construct = importlib.import_module(f"{package}._builder").construct
            accepted = inspect.signature(construct).parameters
            with torch.device("meta"):
                parts = construct(**{k: v for k, v in hyperparameters.items() if k in accepted})
        finally:
            for module in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
                del sys.modules[module]
    body = nn.ModuleDict({"input_encoder": parts.input_encoder, "layers": parts.layers})
    return plans_for(body)


def _tokenizer_files(tokenizer) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer.save_pretrained(scratch)
        return {p.name: p.read_bytes() for p in sorted(Path(scratch).iterdir()) if p.is_file()}


def _token_ids(tokenizer) -> dict[str, int]:
    ids = {}
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, key, None)
        if value is not None:
            ids[key] = value
    return ids


def _same_config(path: Path, wanted: Mapping[str, Any]) -> bool:
    try:
        existing = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return all(existing.get(k) == json.loads(json.dumps(v)) for k, v in wanted.items())


def write_model(
    output_dir: str | Path,
    builder_source: str,
    *,
    name: str | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    searchpath: Sequence[str | Path] | None = None,
    tokenizer=None,
    tp_plan: Mapping[str, str] | None = None,
    pp_plan: Mapping[str, Any] | None = None,
    source_name: str = "a model config",
) -> WriteResult:
    """Write (or bring up to date) a model directory.

    Args:
        output_dir: The model directory, created if missing.
        builder_source: Python source defining ``construct(**hyperparameters)``
            that returns a ``DecoderParts``; its relative imports
            (``from .norms import RMSNorm``) name component files.
        name: Model name; default the directory's name.
        hyperparameters: Values for the builder's parameters and extra
            ``config.json`` keys; the builder's own defaults fill the rest.
        searchpath: Directories holding component files, first match wins;
            default the shipped ``modelsrc/transformer``.
        tokenizer: A transformers tokenizer to save alongside; its special
            token ids go into the config.
        tp_plan: ``base_model_tp_plan``; default: the shipped plan, reduced to
            entries that match this model's modules.
        pp_plan: ``base_model_pp_plan``; default: the shipped plan.
        source_name: Named in the generated module docstring.

    Returns:
        Which files were written and which were already up to date.
    """
    output_dir = Path(output_dir)
    names = model_names(name or output_dir.resolve().name)
    dirs = [Path(d) for d in (searchpath or [modelsrc_dir()])]
    builder = strip_module_docstring(builder_source)
    values = complete_hyperparameters(builder, hyperparameters)
    if tokenizer is not None:
        values = dict(sorted({**_token_ids(tokenizer), **values}.items()))

    modeling = render_modeling(builder, names, source_name)
    components = component_closure(modeling, dirs, provided=[names.configuration_module])
    if tp_plan is None or pp_plan is None:
        default_tp, default_pp = default_plans(builder, components, values)
        tp_plan = default_tp if tp_plan is None else tp_plan
        pp_plan = default_pp if pp_plan is None else pp_plan

    files: dict[str, bytes] = {name_: text.encode() for name_, text in components.items()}
    files[f"{names.modeling_module}.py"] = modeling.encode()
    files[f"{names.configuration_module}.py"] = render_configuration(
        names, values, tp_plan, pp_plan
    ).encode()
    if tokenizer is not None:
        files.update(_tokenizer_files(tokenizer))
    config = config_json(names, values)

    result = WriteResult(output_dir, names)
    output_dir.mkdir(parents=True, exist_ok=True)
    for filename, content in sorted(files.items()):
        path = output_dir / filename
        if path.is_file() and path.read_bytes() == content:
            result.unchanged.append(filename)
            continue
        path.write_bytes(content)
        result.written.append(filename)
    if _same_config(output_dir / "config.json", config):
        result.unchanged.append("config.json")
    else:
        (output_dir / "config.json").write_text(json_text(config))
        result.written.append("config.json")
    result.written.sort()
    result.unchanged.sort()
    _log_result(result)
    return result


def _log_result(result: WriteResult) -> None:
    where = result.output_dir
    if not result.written:
        logger.info("model %s in %s is up to date", result.names.name, where)
        return
    if not result.unchanged:
        logger.info("wrote model %s to %s", result.names.name, where)
        return
    logger.warning(
        "model %s changed; rewrote %s in %s", result.names.name, ", ".join(result.written), where
    )
    if any(where.glob("model*.safetensors")):
        logger.warning("%s holds weights saved for the previous definition", where)
