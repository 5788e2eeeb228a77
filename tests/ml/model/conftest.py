"""Fixtures for the model tests: real templates built into real model directories.

Models come from the shipped templates (``templatelib/models``) with small
sizes set through ``Config.set_value``, generated into a temporary directory
and loaded back through transformers' ``Auto*`` classes, the path users take.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from forgather.config import ConfigEnvironment
from forgather.ml.model import modelsrc_dir
from forgather.project.workspace import templatelib_searchdirs

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Sizes small enough that every test model builds and runs in well under a second.
TINY = {
    "vocab_size": 96,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "num_hidden_layers": 2,
    "max_position_embeddings": 64,
}


def template_env() -> ConfigEnvironment:
    return ConfigEnvironment(templatelib_searchdirs())


def build_template(
    template: str,
    output_dir: Path,
    env: ConfigEnvironment | None = None,
    text: str | None = None,
    **hyperparameters,
):
    """Build ``template`` (or template ``text``) into ``output_dir`` with ``hyperparameters`` set."""
    env = env or template_env()
    if text is not None:
        cfg = env.load_from_string(text, output_dir=str(output_dir))
    else:
        cfg = env.load(template, output_dir=str(output_dir))
    for key, value in hyperparameters.items():
        cfg.set_value(f"model.hyperparameters.{key}", value)
    torch.manual_seed(0)
    return cfg.build("model").eval()


def import_modelsrc() -> ModuleType:
    """``modelsrc/transformer`` as a package named ``modelsrc_transformer``."""
    name = "modelsrc_transformer"
    if name not in sys.modules:
        path = modelsrc_dir()
        spec = importlib.util.spec_from_file_location(
            name, path / "__init__.py", submodule_search_locations=[str(path)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def component(module: str) -> ModuleType:
    """One component module, e.g. ``component("attention_masks")``."""
    import_modelsrc()
    return importlib.import_module(f"modelsrc_transformer.{module}")


@pytest.fixture(scope="session")
def llama(tmp_path_factory):
    """A tiny Llama-style model (GQA: 4 query heads, 2 KV heads)."""
    return build_template("llama_4m.yaml", tmp_path_factory.mktemp("models") / "tiny_llama", **TINY)


@pytest.fixture(scope="session")
def gpt2(tmp_path_factory):
    """A tiny GPT-2-style model (learned positions, tied head)."""
    sizes = {**TINY, "num_key_value_heads": 4}
    return build_template("gpt2_4m.yaml", tmp_path_factory.mktemp("models") / "tiny_gpt2", **sizes)


@pytest.fixture(scope="session")
def deepnet(tmp_path_factory):
    """A tiny DeepNet (post-LN, sinusoidal positions)."""
    sizes = {**TINY, "num_key_value_heads": 4}
    return build_template(
        "deepnet.yaml", tmp_path_factory.mktemp("models") / "tiny_deepnet", **sizes
    )


ALIBI_CONFIG = """\
-- extends "llama_4m.yaml"
[relative_positions]
                alibi: !call:.alibi:ALiBi@alibi
                    num_heads: !var num_attention_heads
"""


@pytest.fixture(scope="session")
def alibi(tmp_path_factory):
    """A tiny Llama-style model with ALiBi instead of RoPE."""
    out = tmp_path_factory.mktemp("models") / "tiny_alibi"
    return build_template("", out, text=ALIBI_CONFIG, **TINY)


@pytest.fixture(params=["llama", "gpt2", "deepnet", "alibi"])
def any_model(request):
    """Each shipped architecture in turn (and ALiBi)."""
    return request.getfixturevalue(request.param)
