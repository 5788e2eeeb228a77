"""Finding the newest checkpoint that fits the model and loading a model directory,
a weights-only trainer checkpoint, a dtype and a chat template file for serving;
what is said when there are no weights to load."""

from __future__ import annotations

import os
import shutil

import pytest
import torch
from safetensors.torch import save_model

from forgather.serve.loading import (
    WeightsNotFound,
    context_length,
    load_for_serving,
    load_model_for_serving,
    newest_checkpoint,
)
from forgather.serve.server import ServerSettings, load_served_model
from tests.serve.tiny_model import build_tiny_llama


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


def test_a_newer_checkpoint_of_another_shape_is_skipped(model_with_checkpoints, tmp_path):
    # An earlier run of a wider model in the same output directory, with more steps.
    wider = build_tiny_llama(str(tmp_path / "wider"), hidden=32)
    path = f"{model_with_checkpoints}/runs/old/checkpoints/checkpoint-99"
    os.makedirs(path)
    shutil.copy(f"{wider}/model.safetensors", path)
    reports: list[str] = []
    loaded = load_model_for_serving(model_with_checkpoints, checkpoint=True, report=reports.append)
    assert loaded.step == 12 and loaded.weights.endswith("runs/b/checkpoints/checkpoint-12")
    assert torch.all(loaded.model.model.norm.weight == 12.0)
    (report,) = reports
    assert report.startswith("skipping runs/old/checkpoints/checkpoint-99: its weights do not fit")
    assert "shape [512, 32] there but [512, 64] in the model" in report


def test_no_checkpoint_that_fits_is_a_clear_error(model_dir, tmp_path):
    root = str(tmp_path / "tiny")
    shutil.copytree(model_dir, root)
    path = f"{root}/checkpoints/checkpoint-7"
    os.makedirs(path)
    save_model(torch.nn.Linear(2, 2), os.path.join(path, "model.safetensors"))
    reports: list[str] = []
    with pytest.raises(WeightsNotFound, match="none of the 1 checkpoints under .* fit"):
        load_model_for_serving(root, checkpoint=True, report=reports.append)
    assert reports == [
        "skipping checkpoints/checkpoint-7: its weights do not fit the model: "
        "it lacks 21 of the model's tensors: lm_head.weight, model.embed_tokens.weight, "
        "model.layers.0.input_layernorm.weight and 18 more"
    ]


def test_checkpoint_of_a_model_directory_without_weights(model_dir, model_and_tokenizer, tmp_path):
    """During the first run the model directory has config and code, the weights are in checkpoints."""
    model, _ = model_and_tokenizer
    root = str(tmp_path / "tiny")
    shutil.copytree(model_dir, root, ignore=shutil.ignore_patterns("model.safetensors"))
    _weights_only_checkpoint(model, f"{root}/runs/r/checkpoints/checkpoint-7", 7.0)
    loaded = load_model_for_serving(root, checkpoint=True)
    assert (loaded.step, os.path.basename(loaded.weights)) == (7, "checkpoint-7")
    assert torch.all(loaded.model.model.norm.weight == 7.0)
    assert torch.equal(loaded.model.lm_head.weight, model.lm_head.weight)


def test_model_directory_without_weights_says_what_to_do(model_dir, tmp_path):
    root = str(tmp_path / "tiny")
    shutil.copytree(model_dir, root, ignore=shutil.ignore_patterns("model.safetensors"))
    with pytest.raises(WeightsNotFound) as error:
        load_for_serving(root)
    message = str(error.value)
    assert message.startswith(f"no weights in {root} (no model.safetensors): train the model")
    assert "-c" in message and "\n" not in message
    # A link to a checkpoint that was deleted since.
    os.symlink("runs/r/checkpoints/checkpoint-7/model.safetensors", f"{root}/model.safetensors")
    with pytest.raises(
        WeightsNotFound, match="which no longer exists: run `forgather checkpoint link`"
    ):
        load_for_serving(root)
    with pytest.raises(WeightsNotFound, match="no checkpoint-<step> directory with weights under"):
        load_for_serving(root, checkpoint=True)


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


def test_a_port_taken_after_the_cli_checked_it_is_an_os_error(model_dir, capfd):
    """uvicorn exits 3 when it cannot bind; serve() says so as an error naming the address
    (the CLI prints it as one line, exit 1) instead of leaking uvicorn's exit status."""
    import socket

    from forgather.serve.server import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = ServerSettings(model_path=model_dir, port=port, max_batch_size=2)
        with pytest.raises(OSError, match="could not start listening") as raised:
            serve(settings)
    assert raised.value.filename == f"127.0.0.1:{port}"
    assert "address already in use" in capfd.readouterr().err.lower()
