"""LoRA and full fine-tuning of tiny local models of every supported architecture:
train on the shipped chat data, save the adapter in PEFT's format, merge it, and
check the merged model gives the adapted model's logits."""

from __future__ import annotations

import json
import sys
import warnings

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from forgather.ml.data import (
    CausalLMCollator,
    ChatDataset,
    load_chat_splits,
    open_chat,
    pad_token_id,
    with_chat_template,
)
from forgather.ml.finetune import (
    load_pretrained,
    load_tokenizer,
    merge_lora,
)
from forgather.ml.trainer import Trainer, TrainingArguments

from .conftest import CHAT, CONFIGS

peft = pytest.importorskip("peft")


def chat_data(model_dir, block_size=64):
    tok = with_chat_template(load_tokenizer(model_dir))
    splits = load_chat_splits(source=open_chat(str(CHAT)), tokenizer=tok, validation_fraction=0.1)
    return tok, ChatDataset(splits["train"], block_size=block_size, packed=True, shuffle_seed=0)


def train(model, model_dir, output_dir, steps=3, lr=1e-2):
    tok, data = chat_data(model_dir)
    args = TrainingArguments(
        str(output_dir), per_device_train_batch_size=4, max_steps=steps, learning_rate=lr,
        logging_steps=steps, eval_strategy="no", save_strategy="no", report_to="none",
        disable_tqdm=True, seed=1,
    )  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=data,
                      data_collator=CausalLMCollator(pad_token_id(tok)), processing_class=tok)  # fmt: skip
    trainer.train()
    trainer.save_model(str(output_dir))
    return trainer


def logits(model, vocab, n=20):
    ids = torch.randint(0, vocab, (2, n), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


@pytest.mark.parametrize("arch", list(CONFIGS))
def test_lora_trains_saves_a_peft_adapter_and_merges(arch, tiny_models, tmp_path):
    base_dir = tiny_models[arch]
    model = load_pretrained(base_dir, lora={"r": 4, "lora_alpha": 8})
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    frozen_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}

    train(model, base_dir, tmp_path / "adapter")
    assert all(
        torch.equal(p, frozen_before[n]) for n, p in model.named_parameters() if n in frozen_before
    )
    files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= files
    assert "model.safetensors" not in files
    saved = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert len(saved) == len(trainable) and all(k.startswith("base_model.model.") for k in saved)
    assert any(v.abs().max() > 0 for k, v in saved.items() if "lora_B" in k)  # it trained
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_dir) and config["task_type"] == "CAUSAL_LM"

    vocab = model.get_input_embeddings().weight.shape[0]
    adapted = logits(model, vocab)
    result = merge_lora(tmp_path / "adapter", tmp_path / "merged")
    assert result.merged_layers == len(trainable) // 2
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in k or "base_layer" in k for k in merged.state_dict())
    torch.testing.assert_close(logits(merged, vocab), adapted, atol=1e-4, rtol=1e-4)
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    assert (logits(base, vocab) - adapted).abs().max() > 1e-3  # the merge changed the model
    assert (tmp_path / "merged" / "chat_template.jinja").is_file()  # training's template kept


def test_peft_reads_our_adapter(tiny_models, tmp_path):
    """The adapter directory is PEFT's format: PeftModel.from_pretrained gives our logits."""
    base_dir = tiny_models["llama"]
    model = load_pretrained(base_dir, lora={"r": 4})
    train(model, base_dir, tmp_path / "adapter", steps=2)
    vocab = model.get_input_embeddings().weight.shape[0]
    with (
        warnings.catch_warnings()
    ):  # peft 0.21 calls transformers' deprecated is_gradient_checkpointing
        warnings.simplefilter("ignore", FutureWarning)
        theirs = peft.PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(base_dir), str(tmp_path / "adapter")
        )
    torch.testing.assert_close(logits(theirs, vocab), logits(model, vocab))


def test_full_finetuning_writes_a_whole_model(tiny_models, tmp_path):
    base_dir = tiny_models["qwen3"]
    model = load_pretrained(base_dir)
    assert all(p.requires_grad for p in model.parameters())
    train(model, base_dir, tmp_path / "out", steps=2, lr=1e-3)
    files = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert "adapter_config.json" not in files
    tuned = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    vocab = base.get_input_embeddings().weight.shape[0]
    torch.testing.assert_close(logits(tuned, vocab), logits(model, vocab))
    assert (logits(base, vocab) - logits(tuned, vocab)).abs().max() > 1e-3


def test_lora_on_a_converted_forgather_model(tiny_models, tmp_path, capsys):
    """HF -> Forgather (forgather convert) -> LoRA -> merge: a generated model directory again."""
    from forgather.ml.model_conversion import convert_model

    convert_model(str(tiny_models["llama"]), str(tmp_path / "fg"))
    model = load_pretrained(tmp_path / "fg", lora={"r": 4, "target_modules": ["q_proj", "v_proj"]})
    assert {n.split(".")[-4] for n, p in model.named_parameters() if p.requires_grad} == {
        "q_proj",
        "v_proj",
    }
    train(model, tmp_path / "fg", tmp_path / "adapter", steps=2)
    vocab = model.get_input_embeddings().weight.shape[0]
    adapted = logits(model, vocab)
    capsys.readouterr()
    from forgather.cli import main

    assert main(["merge-lora", str(tmp_path / "adapter"), str(tmp_path / "merged")]) == 0
    out = capsys.readouterr().out  # the base is said to be left alone: only a copy is merged
    assert f"LoRA layers with a copy of {tmp_path / 'fg'} (left as it was)" in out
    assert out.endswith(f"saved the merged model to {tmp_path / 'merged'}\n")
    assert (tmp_path / "merged" / "modeling_fg.py").is_file()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", trust_remote_code=True)
    torch.testing.assert_close(logits(merged, vocab), adapted, atol=1e-4, rtol=1e-4)


def test_packed_conversations_stay_apart_in_a_transformers_model(tiny_models):
    """Two documents packed in one row (position_ids restart) give each one's own loss."""
    model = load_pretrained(tiny_models["llama"])
    a, b = torch.arange(3, 13), torch.arange(20, 32)
    row = torch.cat([a, b])[None]
    positions = torch.cat([torch.arange(10), torch.arange(12)])[None]
    with torch.no_grad():
        packed = model(input_ids=row, position_ids=positions, attention_mask=torch.ones_like(row))
        alone = model(input_ids=b[None]).logits
    torch.testing.assert_close(packed.logits[:, 10:], alone, atol=1e-5, rtol=1e-5)
    # with right padding (the collator's: position 0, mask 0) the same holds
    padded = torch.cat([row, torch.zeros(1, 3, dtype=row.dtype)], 1)
    mask = torch.cat([torch.ones_like(row), torch.zeros(1, 3, dtype=row.dtype)], 1)
    with torch.no_grad():
        out = model(input_ids=padded, position_ids=torch.cat([positions, mask[:, -3:] * 0], 1),
                    attention_mask=mask)  # fmt: skip
    torch.testing.assert_close(out.logits[:, 10:22], alone, atol=1e-5, rtol=1e-5)


def test_lora_without_peft_names_the_extra(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # as if peft were not installed
    with pytest.raises(ImportError, match=r"pip install 'forgather\[lora\]'"):
        load_pretrained(tiny_models["llama"], lora={"r": 4})
    (tmp_path / "adapter").mkdir()
    with pytest.raises(ImportError, match=r"forgather\[lora\]"):
        merge_lora(tmp_path / "adapter", tmp_path / "merged")
    assert load_pretrained(tiny_models["llama"]) is not None  # full fine-tuning needs no peft


def test_merge_refuses_an_existing_output_and_a_missing_base(tiny_models, tmp_path):
    model = load_pretrained(tiny_models["gpt2"], lora={"r": 2})
    train(model, tiny_models["gpt2"], tmp_path / "adapter", steps=1)
    (tmp_path / "exists").mkdir()
    with pytest.raises(FileExistsError):
        merge_lora(tmp_path / "adapter", tmp_path / "exists")
    with pytest.raises(FileNotFoundError, match="pass the base model"):
        merge_lora(tmp_path / "adapter", tmp_path / "m", base_model=tmp_path / "nowhere")
    assert not (tmp_path / "m").exists()


def test_merge_lora_command_reports_a_missing_adapter_in_one_line(tmp_path, capsys):
    from forgather.cli import main

    assert main(["merge-lora", str(tmp_path / "none"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "is not a LoRA adapter directory: no adapter_config.json" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
