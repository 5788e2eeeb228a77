"""benchmarks/train_speed.py: it trains this checkout's generated model, and each
trainer's peak RSS is its own.

The training runs themselves take minutes (docs/performance.md has the
figures); this checks the preparation every peer shares and the memory figure.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.benchmarks.conftest import BENCHMARKS, load_benchmark


@pytest.fixture(scope="module")
def train_speed():
    return load_benchmark("train_speed")


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


def test_peak_rss_is_the_childs_own_not_its_parents(tmp_path):
    """A child started while its parent holds much more memory reports its own peak."""
    held = bytearray(400 * 2**20)  # this process's resident set grows by 400 MiB
    held[::4096] = b"x" * len(range(0, len(held), 4096))
    code = (
        f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import train_speed; "
        "print(train_speed.peak_rss_mib())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    del held
    assert 0 < float(result.stdout) < 200  # the interpreter and the script: tens of MiB
