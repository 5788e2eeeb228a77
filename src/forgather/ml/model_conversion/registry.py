"""Converters by Hugging Face ``model_type``: the original Forgather's plugin names.

    @register_converter("my_llama")
    class MyConverter(HFConverter):
        def convert_to_forgather(self, src_model_path, dst_model_path, **options): ...

    get_converter("qwen3")().convert_to_forgather("~/models/qwen3", "output_models/qwen3")

The built-in converters (``llama``, ``mistral``, ``qwen2``, ``qwen3``,
``gpt2``) are :class:`HFConverter` instances over :func:`convert.hf_to_forgather`
and :func:`convert.forgather_to_hf`. ``--converter-path DIR`` imports the
Python files in DIR so that their ``@register_converter`` classes take part.

Decision a reader may question: a registered converter is used only through
``convert_to_forgather`` / ``convert_from_forgather``. The original's finer
hooks (regex parameter mappings, config field maps, a model project per
architecture) do not exist here, because conversion reads the architecture
from the modules (``architectures.py``); a plugin overrides the two methods.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from .architectures import HF_FAMILIES

_REGISTRY: dict[str, type] = {}


def register_converter(model_type: str):
    """Class decorator: use this converter for Hugging Face ``model_type``."""

    def decorator(cls: type) -> type:
        if model_type in _REGISTRY and _REGISTRY[model_type] is not cls:
            raise ValueError(f"a converter for model type {model_type!r} is already registered")
        _REGISTRY[model_type] = cls
        return cls

    return decorator


class HFConverter:
    """Converts one Hugging Face architecture to Forgather and back.

    Args:
        model_type: The Hugging Face ``model_type`` (subclasses may set a class attribute).
    """

    model_type: str = ""

    def __init__(self, model_type: str | None = None) -> None:
        self.model_type = model_type or self.model_type

    def convert_to_forgather(
        self,
        src_model_path: str,
        dst_model_path: str,
        dtype: str | None = None,
        max_length: int | None = None,
        **options: Any,
    ):
        """Hugging Face -> Forgather (see :func:`forgather.ml.model_conversion.convert.hf_to_forgather`)."""
        from .convert import hf_to_forgather

        return hf_to_forgather(
            src_model_path, dst_model_path, dtype=dtype, max_length=max_length, **options
        )

    def convert_from_forgather(
        self,
        src_model_path: str,
        dst_model_path: str,
        dtype: str | None = None,
        max_length: int | None = None,
        checkpoint_path: str | None = None,
        **options: Any,
    ):
        """Forgather -> Hugging Face as this converter's ``model_type``."""
        from .convert import forgather_to_hf

        return forgather_to_hf(
            src_model_path,
            dst_model_path,
            dtype=dtype,
            max_length=max_length,
            checkpoint_path=checkpoint_path,
            model_type=self.model_type,
            **options,
        )


def _builtin(model_type: str) -> type:
    return type(f"{model_type.capitalize()}Converter", (HFConverter,), {"model_type": model_type})


for _model_type in HF_FAMILIES:
    register_converter(_model_type)(_builtin(_model_type))


def get_converter(model_type: str) -> type:
    """The converter class registered for ``model_type``.

    Raises:
        ValueError: If none is.
    """
    if model_type not in _REGISTRY:
        raise ValueError(
            f"no converter for model type {model_type!r} (available: {', '.join(_REGISTRY)})"
        )
    return _REGISTRY[model_type]


def list_converters() -> list[str]:
    """The registered model types."""
    return list(_REGISTRY)


def discover_and_register_converters(
    custom_paths: list[str] | None = None, forgather_root: str | None = None
) -> None:
    """Import the ``*.py`` files in ``custom_paths`` (and their ``*/converter.py``) to register plugins.

    Args:
        custom_paths: Directories holding converter modules.
        forgather_root: Accepted for the original's signature; unused (the
            built-in converters need no discovery).
    """
    for directory in custom_paths or []:
        directory = Path(directory).expanduser()
        if not directory.is_dir():
            raise FileNotFoundError(f"converter path {directory} is not a directory")
        for path in sorted([*directory.glob("*.py"), *directory.glob("*/converter.py")]):
            name = f"_forgather_converter_{abs(hash(str(path.resolve())))}"
            if name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)


def detect_model_type(model_path: str) -> tuple[str, str] | None:
    """``("forgather" | "huggingface", model_type)`` of a model directory, or None.

    A Forgather directory's type is the Hugging Face architecture it was
    converted from (``hf_model_type``), or its own ``model_type`` if none.
    """
    path = Path(model_path).expanduser() / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text())
    model_type = str(config.get("model_type", ""))
    if "hf_model_type" in config or model_type.startswith("forgather_"):
        return "forgather", config.get("hf_model_type") or model_type
    return ("huggingface", model_type) if model_type else None


def detect_model_type_from_hf(model_path: str) -> str:
    """The ``model_type`` of a Hugging Face directory.

    Raises:
        ValueError: If it is not a Hugging Face model or has no registered converter.
    """
    found = detect_model_type(model_path)
    if found is None or found[0] != "huggingface":
        raise ValueError(f"{model_path} is not a Hugging Face model directory")
    get_converter(found[1])
    return found[1]


def detect_model_type_from_forgather(model_path: str) -> str | None:
    """The Hugging Face type a Forgather directory was converted from, or None."""
    found = detect_model_type(model_path)
    return found[1] if found and found[0] == "forgather" else None
