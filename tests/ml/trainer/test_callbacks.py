"""Shipped callbacks on real runs: TensorBoard events, progress bar, text samples."""

from __future__ import annotations

import os
import textwrap

import pytest
import torch

from forgather.ml.trainer import Trainer, TrainingArguments
from forgather.ml.trainer.callbacks import TextGenerationCallback

from .tiny_lm import make_trainer, step_losses


def test_tensorboard_scalars(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = make_trainer(str(tmp_path), max_steps=3, report_to=["tensorboard"])
    trainer.train()
    run_dir = tmp_path / "runs" / "run"
    assert any(name.startswith("events.out.tfevents") for name in os.listdir(run_dir))
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/learning_rate", "eval/loss", "train/peak_rss_mib"} <= set(tags)
    losses = [e.value for e in events.Scalars("train/loss")]
    assert losses == pytest.approx(list(step_losses(trainer.state.log_history).values()))


def test_progress_bar_shows_loss_evaluation_and_saves(tmp_path, capsys):
    trainer = make_trainer(str(tmp_path), max_steps=4, disable_tqdm=False)
    trainer.train()
    out, err = capsys.readouterr()
    assert "4/4" in err and "loss=" in err and "tok/s=" in err  # the bar, on stderr
    assert "step 3: eval_loss" in out and "step 4: saved" in out  # printed above it


def hf_model_and_tokenizer():
    """A 1-layer Llama from transformers and a 300-token BPE trained on textwrap's source."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    with open(textwrap.__file__, encoding="utf-8") as f:
        text = f.read()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([text], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    ))  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<eos>", pad_token="<eos>")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
        tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    ids = torch.tensor(tokenizer(text)["input_ids"][: 32 * 16]).view(32, 16)
    rows = [{"input_ids": row, "labels": row} for row in ids]
    return LlamaForCausalLM(config), tokenizer, rows


def train_hf(tmp_path, callbacks, name):
    model, tokenizer, rows = hf_model_and_tokenizer()
    args = TrainingArguments(
        str(tmp_path / name), max_steps=4, per_device_train_batch_size=4, logging_steps=1,
        learning_rate=3e-3, save_strategy="no", report_to="none", disable_tqdm=True,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer,
                      callbacks=callbacks)  # fmt: skip
    trainer.train()
    return trainer


def test_text_generation_samples_without_disturbing_training(tmp_path):
    sampler = TextGenerationCallback(["def wrap("], generation_steps=2, max_new_tokens=6)
    with_samples = train_hf(tmp_path, [sampler], "a")
    without = train_hf(tmp_path, [], "b")
    assert step_losses(with_samples.state.log_history) == step_losses(without.state.log_history)
    assert [(s["step"], s["prompt"]) for s in sampler.samples] == [
        (2, "def wrap("),
        (4, "def wrap("),
    ]
    assert all(s["text"] for s in sampler.samples)
    written = (tmp_path / "a").glob("runs/*/generated_samples.txt")
    assert "[step 4] 'def wrap('" in next(written).read_text()
    assert with_samples.model.training  # put back in training mode


def test_text_generation_needs_generate_and_tokenizer(tmp_path):
    sampler = TextGenerationCallback(["x"], generation_steps=1)
    make_trainer(str(tmp_path), max_steps=2, callbacks=[sampler]).train()  # no tokenizer: no-op
    assert sampler.samples == []
