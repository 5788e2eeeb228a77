"""The shipped model templates and the example projects built on them."""

from __future__ import annotations

import difflib
import math
import re
from pathlib import Path

import pytest

from forgather.config import check
from forgather.ml.model import run_model_test
from forgather.project import Project

from .conftest import TINY

ROOT = Path(__file__).resolve().parents[3]
ATTENTION = ROOT / "examples" / "tiny_experiments" / "attention"
MODELS = ROOT / "examples" / "models"
SCHEMES = {
    "rope.yaml": ("NoneType", "RotaryEmbedding", "NoneType"),
    "alibi.yaml": ("NoneType", "NoneType", "ALiBi"),
    "learned.yaml": ("LearnedPositionalEncoding", "NoneType", "NoneType"),
    "no_positions.yaml": ("NoneType", "NoneType", "NoneType"),
}


def tiny(project: Project):
    for key, value in TINY.items():
        project.config.set_value(f"model.hyperparameters.{key}", value)
    return project


@pytest.mark.parametrize("config", sorted(SCHEMES))
def test_attention_configs_build_their_scheme_and_train(tmp_path, config):
    project = tiny(Project(config, project_dir=ATTENTION, output_dir=str(tmp_path / "m")))
    model = project("model")
    attention = model.model.layers[0].self_attn
    found = (
        type(model.model.input_encoder.positional_encoder).__name__,
        type(attention.rotary).__name__,
        type(attention.alibi).__name__,
    )
    assert found == SCHEMES[config]
    losses = run_model_test(model, steps=3, seq_len=16, lr=1e-2, print_fn=lambda line: None)
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]


@pytest.mark.parametrize("config", ["alibi.yaml", "learned.yaml", "no_positions.yaml"])
def test_attention_configs_differ_from_rope_only_in_positions(config):
    def lines(name):
        return Project(name, project_dir=ATTENTION).pp().splitlines()

    changed = [
        line[1:]
        for line in difflib.unified_diff(lines("rope.yaml"), lines(config), n=0, lineterm="")
        if line[:1] in "+-" and not line.startswith(("+++", "---")) and line[1:].strip()
    ]
    about_metadata = re.compile(
        r"config_name|config_description|model_name|output_dir|name:|source_name"
    )
    about_positions = re.compile(
        r"rotary|alibi|num_heads|positional_encoder|max_position_embeddings|head_dim|"
        r"rope_theta|llama3_scaling|hidden_size"
    )
    assert changed
    assert all(about_metadata.search(line) or about_positions.search(line) for line in changed), (
        changed
    )


@pytest.mark.parametrize(
    "config", ["tiny_llama.yaml", "tiny_gpt2.yaml", "tiny_deepnet.yaml", "llama_7b.yaml"]
)
def test_model_project_configs_check_clean(config):
    project = Project(config, project_dir=MODELS)
    assert check(project.config) == []
    assert "model" in project.config.targets


def test_llama_7b_is_inspected_without_allocating(tmp_path):
    model = Project("llama_7b.yaml", project_dir=MODELS, output_dir=str(tmp_path / "l"))(
        "model", device="meta"
    )
    assert model.device.type == "meta"
    assert sum(p.numel() for p in model.parameters()) == 6_738_415_616
