"""Weights come out as readable as the other files of a model directory.

safetensors 0.8 creates its files 0600 (safetensors/safetensors#782); a model trained
by one user could not be served by another while its config.json could be read.
"""

from __future__ import annotations

import os
import stat

import pytest
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

from forgather.ml.file_modes import new_file_mode, share_weights
from forgather.ml.trainer.checkpoint import save_model_weights

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_new_file_mode_follows_the_umask(umask_022):
    assert new_file_mode() == 0o644
    os.umask(0o077)
    assert new_file_mode() == 0o600


def test_checkpoint_weights_are_readable_like_a_json_beside_them(tmp_path, umask_022):
    save_model_weights(torch.nn.Linear(2, 2), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text("{}")
    assert mode(tmp_path / "model.safetensors") == mode(tmp_path / "config.json") == 0o644


def test_a_save_pretrained_directory_is_shared_as_the_umask_allows(tmp_path, umask_022):
    config = LlamaConfig(vocab_size=32, hidden_size=8, intermediate_size=16,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path / "model")
    weights = tmp_path / "model" / "model.safetensors"
    share_weights(tmp_path / "model")
    assert mode(weights) == mode(tmp_path / "model" / "config.json") == 0o644
    os.umask(0o077)  # a user who keeps files private keeps them so
    save_file({"a": torch.zeros(1)}, tmp_path / "private.safetensors")
    share_weights(tmp_path / "private.safetensors")
    assert mode(tmp_path / "private.safetensors") == 0o600
