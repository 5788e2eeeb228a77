"""benchmarks/train_speed.py: what it trains is this checkout's generated model.

The training runs themselves take minutes (docs/performance.md has the
figures); this checks the preparation that every peer shares.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_speed.py"


@pytest.fixture(scope="module")
def train_speed():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_reused_workdir_gets_the_current_generated_model(train_speed, tmp_path):
    # A model directory left by an earlier checkout: other code, other config.
    stale = tmp_path / "model_llama_4m"
    stale.mkdir()
    (stale / "config.json").write_text(json.dumps({"model_type": "stale"}))
    (stale / "modeling_stale.py").write_text("raise RuntimeError('old code')\n")

    model_dir = train_speed.prepare_model(tmp_path, "llama_4m")

    assert model_dir == stale
    assert not (model_dir / "modeling_stale.py").exists()
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] != "stale"
    assert (model_dir / "model.safetensors").exists()
    # The generated code of this checkout (the stale one had no saved_activations.py).
    sources = {p.name for p in model_dir.glob("*.py")}
    assert "saved_activations.py" in sources
