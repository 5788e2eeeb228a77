"""``forgather checkpoint list|link``: the newest checkpoint that fits the model is
linked (others are passed over, saying why), and ``save_total_limit`` never prunes
the checkpoint the model directory links to, so the link never dangles."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import save_model
from transformers import LlamaConfig, LlamaForCausalLM

from forgather.ml.trainer import TrainerCallback
from tests.ml.trainer.tiny_lm import make_trainer

from .conftest import run_cli


def _llama(hidden: int) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=64, hidden_size=hidden, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True,
    )  # fmt: skip
    return LlamaForCausalLM(config)


def _checkpoint(model_dir: Path, run: str, step: int, model) -> Path:
    path = model_dir / "runs" / run / "checkpoints" / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_model(model, str(path / "model.safetensors"))  # a tied tensor is stored once
    (path / "trainer_state.json").write_text("{}")
    return path


@pytest.fixture
def model_dir(tmp_path) -> Path:
    """A model directory (config, no weights) with checkpoints of two runs:
    ``a`` of this model (steps 4, 8), ``b`` of a wider one left by an earlier config (12)."""
    root = tmp_path / "model"
    _llama(16).save_pretrained(root)
    (root / "model.safetensors").unlink()
    for step in (4, 8):
        _checkpoint(root, "a", step, _llama(16))
    _checkpoint(root, "b", 12, _llama(32))
    return root


def test_link_passes_over_a_checkpoint_of_another_shape(model_dir):
    result = run_cli("checkpoint", "link", str(model_dir))
    assert result.rc == 0, result.err
    assert (
        result.out
        == f"{model_dir}/model.safetensors -> runs/a/checkpoints/checkpoint-8/model.safetensors\n"
    )
    assert result.err.startswith(
        "forgather: skipping runs/b/checkpoints/checkpoint-12: its weights do not fit the model: "
        "lm_head.weight has shape [64, 32] there but [64, 16] in the model"
    )
    assert (model_dir / "model.safetensors").resolve().parent.name == "checkpoint-8"


def test_list_needs_no_torch_and_check_says_what_fits(model_dir):
    probe = (
        "import contextlib, io, sys\n"
        "from forgather.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = main(['checkpoint', 'list', {str(model_dir)!r}])\n"
        "print(rc, sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
        "print(out.getvalue(), end='')\n"
    )
    listed = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert listed.stdout.splitlines() == [
        "0 []",
        f"{model_dir}/runs/a/checkpoints/checkpoint-4",
        f"{model_dir}/runs/a/checkpoints/checkpoint-8",
        f"{model_dir}/runs/b/checkpoints/checkpoint-12",
    ]
    checked = run_cli("checkpoint", "list", str(model_dir), "--check")
    assert checked.rc == 0, checked.err
    lines = checked.out.splitlines()
    assert lines[0].endswith("checkpoint-4  (fits)")
    assert lines[2].endswith("checkpoint-12  (does not fit: lm_head.weight has shape [64, 32] there "
                             "but [64, 16] in the model (19 more tensors differ))")  # fmt: skip


def test_list_says_which_link_points_at_a_checkpoint_and_reads_past_a_bad_one(model_dir):
    assert run_cli("checkpoint", "link", str(model_dir)).rc == 0
    (model_dir / "runs" / "a" / "checkpoints" / "checkpoint-4" / "model.safetensors").write_text(
        "x"
    )
    checked = run_cli("checkpoint", "list", str(model_dir), "--check").out.splitlines()
    assert "checkpoint-4  (unreadable: " in checked[0]
    assert checked[1].endswith(f"checkpoint-8  (linked as {model_dir}/model.safetensors; fits)")
    # From the parent the note still names the real link, not PARENT/model.safetensors.
    above = run_cli("checkpoint", "list", str(model_dir.parent)).out.splitlines()
    assert above[1].endswith(f"checkpoint-8  (linked as {model_dir}/model.safetensors)")
    missing = run_cli("checkpoint", "list", str(model_dir / "nowhere"))
    assert (missing.rc, missing.err) == (
        1,
        f"forgather: error: {model_dir}/nowhere is not a directory\n",
    )


def test_no_checkpoint_that_fits(model_dir):
    for step in (4, 8):
        os.remove(
            model_dir / "runs" / "a" / "checkpoints" / f"checkpoint-{step}" / "model.safetensors"
        )
    result = run_cli("checkpoint", "link", str(model_dir))
    assert result.rc == 1
    assert "skipping runs/a/checkpoints/checkpoint-8: no model.safetensors in it" in result.err
    assert result.err.endswith(
        f"no checkpoint under {model_dir} fits the model in {model_dir}/config.json (see above)\n"
    )
    assert not os.path.lexists(model_dir / "model.safetensors")


class _StopAt(TrainerCallback):
    """Ends training after step ``step`` (the trainer saves a checkpoint when it stops)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = control.should_training_stop = True


def _steps(out: Path) -> list[int]:
    names = [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith("checkpoint-")]
    return sorted(int(n.rsplit("-", 1)[1]) for n in names)


def test_the_linked_checkpoint_survives_save_total_limit(tmp_path):
    """A link made while a run is going stays valid as the run goes on pruning."""

    def train_until(step: int) -> None:
        trainer = make_trainer(str(tmp_path), callbacks=[_StopAt(step)], max_steps=8, save_steps=2,
                               save_total_limit=1, eval_strategy="no", resume_from_checkpoint=True)  # fmt: skip
        trainer.train()

    train_until(2)
    linked = run_cli("checkpoint", "link", str(tmp_path))  # the model has no config.json: unchecked
    assert linked.rc == 0, linked.err
    assert "checkpoint-2/model.safetensors" in linked.out
    train_until(6)  # saves 4 and 6; keeps only the newest... and the linked one
    assert _steps(tmp_path) == [2, 6]
    assert (tmp_path / "model.safetensors").resolve().parent.name == "checkpoint-2"
    assert os.path.getsize(tmp_path / "model.safetensors") > 0

    relinked = run_cli("checkpoint", "link", str(tmp_path))
    assert "checkpoint-6/model.safetensors" in relinked.out
    train_until(8)  # checkpoint-2 is no longer linked: pruned as usual
    assert _steps(tmp_path) == [6, 8]
    assert (tmp_path / "model.safetensors").resolve().parent.name == "checkpoint-6"


def test_link_dry_run_over_a_finished_runs_weights_says_what_it_would_need(model_dir):
    """A finished run leaves a real weights file: --dry-run names the checkpoint, says the
    real run needs --force, changes nothing and succeeds (it used to exit 1)."""
    weights = model_dir / "model.safetensors"
    weights.write_bytes(b"final weights")
    result = run_cli("checkpoint", "link", str(model_dir), "--dry-run")
    assert result.rc == 0, result.err
    assert result.out == (
        f"{weights} -> runs/a/checkpoints/checkpoint-8/model.safetensors  (dry run: nothing "
        "changed; model.safetensors is a real file (final weights?): linking needs --force)\n"
    )
    assert not weights.is_symlink() and weights.read_bytes() == b"final weights"
    assert not list(model_dir.rglob("linked_by.json"))
    forced = run_cli("checkpoint", "link", str(model_dir), "--dry-run", "--force")
    assert forced.out.endswith("(dry run: nothing changed)\n") and not weights.is_symlink()


def test_link_refuses_a_lora_adapter_directory(model_dir):
    """LoRA fine-tuning leaves adapter files and checkpoints of the wrapped model: a
    model.safetensors linked there loads nowhere (PEFT's ``base_layer`` names)."""
    adapter = model_dir.parent / "adapter"
    adapter.mkdir()
    (model_dir / "runs").rename(adapter / "runs")
    (adapter / "adapter_config.json").write_text("{}")
    result = run_cli("checkpoint", "link", str(adapter))
    assert result.rc == 1
    assert f"{adapter} is a LoRA adapter directory" in result.err
    assert f"forgather merge-lora {adapter} MERGED_DIR" in result.err
    assert not (adapter / "model.safetensors").exists()
