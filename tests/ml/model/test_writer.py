"""Writing model directories: content, regeneration, tokenizer, save/load, no Forgather needed."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import AutoConfig, AutoModel, PreTrainedTokenizerFast

from forgather.ml.model import build_model, load_model, write_model

# A builder written by hand, in the form Config.to_python(relative_imports=True) generates.
BUILDER = '''\
"""Hand-written builder: a two-layer pre-LN decoder with RoPE."""

import functools

from .causal_attention import CausalMultiheadAttention
from .causal_lm import DecoderParts
from .decoder_layers import PreLNLayer
from .feedforward import GatedMLP
from .input_encoder import InputEncoder
from .layer_stack import layer_stack
from .norms import RMSNorm
from .rotary_embeddings import RotaryEmbedding


def construct(*, vocab_size, hidden_size, num_attention_heads, num_hidden_layers, rope_theta=10000.0, **context_vars):
    head_dim = hidden_size // num_attention_heads
    attention = functools.partial(
        CausalMultiheadAttention, hidden_size, num_attention_heads,
        rotary=RotaryEmbedding(head_dim, rope_theta=rope_theta),
    )
    layer = functools.partial(
        PreLNLayer,
        attention_factory=attention,
        feedforward_factory=functools.partial(GatedMLP, hidden_size, 2 * hidden_size),
        norm_factory=functools.partial(RMSNorm, hidden_size),
    )
    return DecoderParts(
        input_encoder=InputEncoder(vocab_size, hidden_size),
        layers=layer_stack(layer, num_hidden_layers),
        output_norm=RMSNorm(hidden_size),
    )
'''
SIZES = {"vocab_size": 64, "hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 2}


def test_directory_holds_the_components_it_uses_and_an_auto_map(tmp_path):
    result = write_model(tmp_path / "tiny", BUILDER, hyperparameters=SIZES)
    files = sorted(p.name for p in (tmp_path / "tiny").iterdir())
    assert files == sorted(result.written)
    assert "alibi.py" not in files and "absolute_positions.py" not in files
    assert {"modeling_tiny.py", "configuration_tiny.py", "config.json", "causal_lm.py"} <= set(
        files
    )
    config = json.loads((tmp_path / "tiny" / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_tiny.ForgatherTinyConfig",
        "AutoModel": "modeling_tiny.ForgatherTinyModel",
        "AutoModelForCausalLM": "modeling_tiny.ForgatherTinyForCausalLM",
    }
    assert config["architectures"] == ["ForgatherTinyForCausalLM"]
    assert config["rope_theta"] == 10000.0  # the builder's own default
    assert config["num_key_value_heads"] == 2 and config["head_dim"] == 16  # derived for vLLM


def test_regenerating_unchanged_rewrites_nothing_and_a_change_is_reported(tmp_path, caplog):
    out = tmp_path / "tiny"
    write_model(out, BUILDER, hyperparameters=SIZES)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    caplog.set_level(logging.INFO, logger="forgather.ml.model.writer")
    again = write_model(out, BUILDER, hyperparameters=SIZES)
    assert not again.changed
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps
    assert "model tiny in" in caplog.text and "is up to date" in caplog.text

    changed = write_model(out, BUILDER, hyperparameters={**SIZES, "num_hidden_layers": 3})
    assert sorted(changed.written) == ["config.json", "configuration_tiny.py"]
    assert "model tiny changed; rewrote config.json, configuration_tiny.py" in caplog.text


def test_parallel_plans_default_to_matching_entries_and_can_be_set(tmp_path):
    write_model(tmp_path / "auto", BUILDER, hyperparameters=SIZES)
    config = AutoConfig.from_pretrained(tmp_path / "auto", trust_remote_code=True)
    assert config.base_model_tp_plan["layers.*.mlp.gate_proj"] == "colwise"
    assert list(config.base_model_pp_plan) == ["input_encoder", "layers", "norm"]
    plan = {"layers.*.self_attn.q_proj": "colwise", "layers.*.self_attn.o_proj": "rowwise"}
    write_model(tmp_path / "set", BUILDER, hyperparameters=SIZES, tp_plan=plan)
    config = AutoConfig.from_pretrained(tmp_path / "set", trust_remote_code=True)
    assert config.base_model_tp_plan == plan


def test_a_component_that_does_not_exist_is_named(tmp_path):
    builder = BUILDER.replace(
        "from .norms import RMSNorm", "from .norms import RMSNorm\nfrom .moe import Experts"
    )
    with pytest.raises(FileNotFoundError, match=r"imports \.moe, which is in none of: .*modelsrc"):
        write_model(tmp_path / "x", builder, hyperparameters=SIZES)
    with pytest.raises(ValueError, match="only flat relative imports"):
        write_model(
            tmp_path / "x", BUILDER.replace("from .norms", "from ..norms"), hyperparameters=SIZES
        )


def test_a_missing_hyperparameter_is_named(tmp_path):
    with pytest.raises(ValueError, match="no value for model hyperparameter.*num_hidden_layers"):
        write_model(
            tmp_path / "x",
            BUILDER,
            hyperparameters={"vocab_size": 8, "hidden_size": 8, "num_attention_heads": 2},
        )


def test_tokenizer_files_and_special_ids_are_shipped(tmp_path):
    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.train_from_iterator(
        ["the quick brown fox jumps over the lazy dog"] * 20,
        trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>", "<pad>", "<eos>"]),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>", eos_token="<eos>"
    )
    out = tmp_path / "tok"
    write_model(out, BUILDER, hyperparameters=SIZES, tokenizer=tokenizer)
    assert (out / "tokenizer.json").is_file()
    config = json.loads((out / "config.json").read_text())
    assert (config["pad_token_id"], config["eos_token_id"]) == (1, 2)
    assert not write_model(out, BUILDER, hyperparameters=SIZES, tokenizer=tokenizer).changed


def test_save_and_load_with_tied_weights_and_shards(tmp_path):
    out = tmp_path / "tied"
    model = build_model(out, BUILDER, hyperparameters={**SIZES, "tie_word_embeddings": True}).eval()
    assert model.lm_head.weight is model.get_input_embeddings().weight
    model.save_pretrained(out, max_shard_size="20KB")
    assert (out / "model.safetensors.index.json").is_file()
    loaded = load_model(out, attn_implementation="eager")
    assert loaded.config._attn_implementation == "eager"
    assert loaded.lm_head.weight is loaded.get_input_embeddings().weight
    ids = torch.randint(0, 64, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    # save_pretrained keeps what vLLM needs: AutoModel in auto_map.
    assert "AutoModel" in json.loads((out / "config.json").read_text())["auto_map"]
    base = AutoModel.from_config(
        AutoConfig.from_pretrained(out, trust_remote_code=True), trust_remote_code=True
    )
    assert type(base).__name__ == "ForgatherTiedModel" and base.is_backend_compatible()


def test_loads_and_generates_where_forgather_cannot_be_imported(tmp_path):
    out = tmp_path / "standalone"
    build_model(out, BUILDER, hyperparameters=SIZES).save_pretrained(out)
    script = textwrap.dedent(f"""
        import sys
        sys.modules["forgather"] = None  # any `import forgather` now raises ImportError
        try:
            import forgather
        except ImportError:
            pass
        else:
            raise SystemExit("forgather was importable")
        import torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(out)!r}, trust_remote_code=True)
        tokens = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=4, do_sample=False,
                                pad_token_id=0)
        print("generated", tuple(tokens.shape), type(model).__module__)
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "generated (1, 7) transformers_modules." in done.stdout
