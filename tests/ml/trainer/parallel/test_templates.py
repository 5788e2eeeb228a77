"""The templates of the multi-process trainers: a config that extends them builds its trainer.

The configs are inline strings in the shape of a user's config; the trainer
is built by the training script's own partial, as `forgather train` does
(nothing is launched: the trainers join their process group only in `train()`).
"""

from __future__ import annotations

import pytest

from forgather.config import ConfigEnvironment
from forgather.ml.trainer import AccelTrainer, PipelineTrainer, TrainingArguments
from forgather.project.workspace import templatelib_searchdirs

CONFIG = """\
-- extends "{template}"

[datasets_definition]
.define: &train_dataset !call:tests.ml.trainer.parallel.worker:packed_rows [8]
.define: &data_collator !call:forgather.ml.data:CausalLMCollator {{pad_token_id: 0}}

[model_definition]
.define: &model !call:forgather.ml.model:load_model [{{{{ model_source | toyaml }}}}]
"""


def build_trainer(tmp_path, model_dir, template: str, **variables):
    env = ConfigEnvironment(templatelib_searchdirs())
    cfg = env.load_from_string(
        CONFIG.format(template=template), model_source=str(model_dir),
        output_dir=str(tmp_path), **variables,
    )  # fmt: skip
    script = cfg.build("main")
    return script.trainer_factory(args=TrainingArguments(str(tmp_path), report_to="none"))


def test_accel_template_builds_an_fsdp_trainer(tmp_path, model_dir):
    trainer = build_trainer(
        tmp_path,
        model_dir,
        "accel_training_script.yaml",
        strategy="fsdp",
        state_dict_type="sharded",
    )
    assert isinstance(trainer, AccelTrainer)
    assert (trainer.strategy, trainer.state_dict_type) == ("fsdp", "sharded")


def test_accel_template_defaults_to_ddp(tmp_path, model_dir):
    trainer = build_trainer(tmp_path, model_dir, "accel_training_script.yaml")
    assert (trainer.strategy, trainer.state_dict_type, trainer.timeout_seconds) == (
        "ddp",
        "full",
        600,
    )


def test_pipeline_template_passes_its_variables(tmp_path, model_dir):
    trainer = build_trainer(
        tmp_path, model_dir, "pipeline_training_script.yaml", pipeline_parallel_size=2,
        pipeline_schedule="ZBVZeroBubble", n_microbatches=4, pipeline_balance="parameters",
        split_points=["model.layers.1", "model.layers.2", "model.layers.3"],
    )  # fmt: skip
    assert isinstance(trainer, PipelineTrainer)
    assert trainer.schedule_name == "ZBVZeroBubble" and trainer.pipeline_parallel_size == 2
    assert trainer.n_microbatches == 4 and trainer.balance == "parameters"
    assert trainer.split_points == ["model.layers.1", "model.layers.2", "model.layers.3"]


@pytest.mark.parametrize(
    "template", ["accel_training_script.yaml", "pipeline_training_script.yaml"]
)
def test_templates_keep_the_training_script(tmp_path, model_dir, template):
    env = ConfigEnvironment(templatelib_searchdirs())
    cfg = env.load_from_string(
        CONFIG.format(template=template), model_source=str(model_dir), output_dir=str(tmp_path)
    )
    assert "TrainingScript" in cfg.pp and cfg.build("meta")["config_class"] == (
        "type.training_script.causal_lm"
    )
