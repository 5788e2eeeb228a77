"""Finding the newest checkpoint and loading a model directory, a weights-only
trainer checkpoint, a dtype and a chat template file for serving."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from safetensors.torch import save_model

from forgather.serve.loading import context_length, load_for_serving, newest_checkpoint
from forgather.serve.server import ServerSettings, load_served_model


def _weights_only_checkpoint(model, path: str, value: float) -> None:
    """A checkpoint as the trainer writes it: weights (and state), no config.json."""
    os.makedirs(path)
    with torch.no_grad():
        original = model.model.norm.weight.clone()
        model.model.norm.weight.fill_(value)
        save_model(model, os.path.join(path, "model.safetensors"))
        model.model.norm.weight.copy_(original)
    with open(os.path.join(path, "trainer_state.json"), "w") as f:
        f.write("{}")


@pytest.fixture
def model_with_checkpoints(model_dir, model_and_tokenizer, tmp_path) -> str:
    model, _ = model_and_tokenizer
    root = str(tmp_path / "tiny")
    shutil.copytree(model_dir, root)
    _weights_only_checkpoint(model, f"{root}/runs/a/checkpoints/checkpoint-5", 5.0)
    _weights_only_checkpoint(model, f"{root}/runs/b/checkpoints/checkpoint-12", 12.0)
    os.makedirs(f"{root}/runs/b/checkpoints/checkpoint-40")  # no weights: not a checkpoint
    _weights_only_checkpoint(model, f"{root}/runs/b/checkpoints/.tmp-checkpoint-50", 50.0)
    return root


def test_newest_checkpoint_is_the_highest_step(model_with_checkpoints, model_dir):
    assert newest_checkpoint(model_with_checkpoints).endswith("runs/b/checkpoints/checkpoint-12")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        newest_checkpoint(model_dir)


def test_load_weights_only_checkpoint(model_with_checkpoints, model_and_tokenizer):
    served_model, _ = model_and_tokenizer
    model, tokenizer = load_for_serving(model_with_checkpoints, checkpoint=True)
    assert torch.all(model.model.norm.weight == 12.0)
    assert torch.equal(model.lm_head.weight, served_model.lm_head.weight)
    assert tokenizer.eos_token == "<|eos|>" and not model.training


def test_checkpoint_that_does_not_fit_is_an_error(model_with_checkpoints):
    path = f"{model_with_checkpoints}/checkpoints/checkpoint-99"
    os.makedirs(path)
    save_model(torch.nn.Linear(2, 2), os.path.join(path, "model.safetensors"))
    with pytest.raises(ValueError, match="does not match the model"):
        load_for_serving(model_with_checkpoints, checkpoint=True)


def test_dtype_and_chat_template_file(model_dir, tmp_path):
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}[{{ m['content'] }}]{% endfor %}")
    model, tokenizer = load_for_serving(
        model_dir, dtype="bfloat16", chat_template_file=str(template)
    )
    assert model.dtype == torch.bfloat16
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "[hi]"
    assert context_length(model, tokenizer) == 4096
    with pytest.raises(ValueError, match="unknown dtype"):
        load_for_serving(model_dir, dtype="int3")


def test_served_model_is_named_after_its_directory(model_dir):
    served = load_served_model(ServerSettings(model_path=model_dir + "/", max_batch_size=2))
    assert served.name == "tiny" and served.context_length == 4096
    assert served.stop_token_ids == (served.tokenizer.eos_token_id,)
    assert served.scheduler.max_batch_size == 2
