"""templatelib/finetune/finetune.yaml, rendered and built for real: LoRA on chat data
with the single-process trainer, and the other trainers and data kinds as configs."""

from __future__ import annotations

import copy

import pytest
from safetensors.torch import load_file
from torch import nn

from forgather.config import ConfigEnvironment, ConfigError
from forgather.ml.finetune import load_pretrained, save_adapter
from forgather.project import templatelib_searchdirs

from .conftest import CHAT

pytest.importorskip("peft")


def load(**variables):
    return ConfigEnvironment(searchpath=templatelib_searchdirs()).load("finetune.yaml", **variables)


def test_finetune_template_trains_lora_and_saves_the_adapter(tiny_models, tmp_path):
    cfg = load(
        model_path=str(tiny_models["mistral"]), data_path=str(CHAT), output_dir=str(tmp_path),
        max_steps=2, block_size=64, batch_size=2, lora_r=2,
    )  # fmt: skip
    cfg.set_value("main.args.eval_strategy", "no")
    cfg.set_value("main.args.report_to", "none")
    cfg.set_value("main.args.disable_tqdm", True)
    script = cfg.build("main")
    script.run()
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / "tokenizer.json").is_file()
    assert len(load_file(tmp_path / "adapter_model.safetensors")) == 2 * 7 * 2  # A, B; 7 per layer


@pytest.mark.parametrize(
    ("variables", "trainer", "dataset"),
    [
        ({"trainer": "accel", "strategy": "fsdp"}, "AccelTrainer", "ChatDataset"),
        ({"trainer": "pipeline"}, "PipelineTrainer", "ChatDataset"),
        ({"data": "text", "lora": False}, "Trainer", "PackedDataset"),
    ],
)
def test_finetune_template_picks_trainer_and_data(variables, trainer, dataset, tmp_path):
    cfg = load(model_path=str(tmp_path), data_path=str(CHAT), **variables)
    text = cfg.pp
    assert f"!partial:forgather.ml.trainer:{trainer}@trainer" in text
    assert f"!call:forgather.ml.data:{dataset}@train_dataset" in text
    assert ("lora: null" in text) == (variables.get("lora") is False)
    if trainer == "PipelineTrainer":
        assert "pad_to_multiple_of: 512" in text  # one batch shape


def test_adapter_saved_from_one_pipeline_stage_is_complete(tiny_models, tmp_path):
    """A stage holds only its layers' adapters; the gathered weights still make one adapter."""
    model = load_pretrained(tiny_models["llama"], lora={"r": 2})
    weights = model.state_dict()
    stage = copy.deepcopy(model)
    stage.model.layers[1] = nn.Identity()  # another stage's layer
    save_adapter(stage, weights, str(tmp_path))
    saved = load_file(tmp_path / "adapter_model.safetensors")
    assert len(saved) == sum(1 for n in weights if ".lora_" in n) == 28


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("trainer", "acel", "-D trainer=acel: must be one of single, accel, pipeline"),
        ("data", "txt", "-D data=txt: must be chat or text"),
        ("lora", "flase", "-D lora=flase: must be true or false"),
    ],
)
def test_a_variable_outside_its_choices_is_refused_at_its_check(variable, value, says):
    """Not Jinja's symptom ("'dict object' has no attribute 'acel'") nor a silent fallback
    (any other `data` read as text, any non-empty `lora` string as true)."""
    with pytest.raises(ConfigError) as caught:
        load(model_path="m", data_path="d", **{variable: value})
    assert str(caught.value).startswith(f"{caught.value.location.file}:")
    assert says in str(caught.value)
    assert caught.value.location.file.endswith("finetune.yaml")


@pytest.mark.parametrize(
    ("variables", "path", "expected"),
    [
        ({"lora": False}, "main.args.learning_rate", 2e-5),  # the full fine-tuning default
        ({"learning_rate": 5e-5}, "main.args.learning_rate", 5e-5),
        ({"lora_dropout": 1e-5}, "main.trainer.model.lora.lora_dropout", 1e-5),
        ({"data": "text", "validation_fraction": 1e-5}, "splits.validation_fraction", 1e-5),
    ],
)
def test_small_floats_stay_numbers(variables, path, expected):
    """Jinja prints 2e-05 for 2e-5, which YAML 1.1 reads as a string (a float needs a dot):
    the optimizer then failed with "'<=' not supported between 'float' and 'str'"."""
    from forgather.config.traverse import lookup

    value = lookup(load(model_path="m", data_path="d", **variables).graph, path)
    assert isinstance(value, float) and value == expected
