"""Cutting a generated model into stages, and schedule placement; in one process.

The model is the tiny generated Llama of `conftest.py` (4 layers). Layer
parameters: 9,280 each; embedding 4,096 (first stage); norm + head 4,128 (last).
"""

from __future__ import annotations

import pytest
import torch

from forgather.ml.model import load_model
from forgather.ml.trainer.parallel.pipeline_schedules import SCHEDULES, choose_schedule
from forgather.ml.trainer.parallel.pipeline_split import (
    PassThrough,
    build_stage,
    check_no_cross_stage_ties,
    decoder_layout,
    merge_stage_weights,
    plan_stages,
)

from .worker import packed_rows


@pytest.fixture
def model(model_dir):
    return load_model(model_dir).eval()


def layers(plan):
    return [(r.start, r.stop) for r in plan]


def test_layout_follows_the_pipeline_plan(model):
    layout = decoder_layout(model)
    assert layout.layers == "model.layers" and layout.num_layers == 4
    assert layout.before == ("model.input_encoder",)
    assert layout.after == ("model.norm", "lm_head")


def test_balance_by_layer_count_gives_earlier_stages_the_extra_layers(model):
    assert layers(plan_stages(model, 2)) == [(0, 2), (2, 4)]
    assert layers(plan_stages(model, 3)) == [(0, 2), (2, 3), (3, 4)]
    assert layers(plan_stages(model, 4)) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_balance_by_parameters_counts_embedding_and_head(model):
    # [1, 2, 1] puts 13,376 / 18,560 / 13,408 parameters on the stages; any other
    # cut has a stage of 22,656 or more (two layers plus the embedding or the head).
    assert layers(plan_stages(model, 3, balance="parameters")) == [(0, 1), (1, 3), (3, 4)]


def test_named_split_points(model):
    plan = plan_stages(model, 3, split_points=["model.layers.1", "layers.3"])
    assert layers(plan) == [(0, 1), (1, 3), (3, 4)]


@pytest.mark.parametrize(
    ("stages", "points", "message"),
    [
        (3, ["model.layers.2"], "3 stages need 2 increasing split points"),
        (3, ["model.layers.3", "model.layers.1"], "increasing split points"),
        (2, ["model.layers.0"], "increasing split points"),
        (2, ["model.norm"], "split point 'model.norm' is not a layer"),
        (2, ["model.layers.9"], "is not a layer"),
    ],
)
def test_bad_split_points_are_explained(model, stages, points, message):
    with pytest.raises(ValueError, match=message):
        plan_stages(model, stages, split_points=points)


def test_more_stages_than_layers_is_refused(model):
    with pytest.raises(ValueError, match="4 layers cannot fill 5 pipeline stages"):
        plan_stages(model, 5)
    with pytest.raises(ValueError, match="balance must be"):
        plan_stages(model, 2, balance="flops")


def test_stages_in_sequence_equal_the_whole_model_on_packed_documents(model):
    """Positions reach every stage: the second stage's attention separates the documents too."""
    rows = packed_rows(2)
    input_ids = torch.stack([r["input_ids"] for r in rows])  # (2, 32)
    position_ids = torch.stack([r["position_ids"] for r in rows])  # two documents per row
    layout, plan = decoder_layout(model), plan_stages(model, 2)
    first, last = (build_stage(model, layout, plan, s, copy_model=True) for s in (0, 1))
    with torch.no_grad():
        expected = model(input_ids=input_ids, position_ids=position_ids).logits
        hidden = first(input_ids, position_ids)  # (2, 32, 32)
        logits = last(hidden, position_ids)
        as_one_document = last(hidden, torch.arange(32).expand(2, 32))
    assert hidden.shape == (2, 32, 32) and logits.shape == (2, 32, 128)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(as_one_document[:, 20:], expected[:, 20:], atol=1e-3)


def test_a_stage_holds_only_its_weights_under_the_unsplit_names(model):
    layout, plan = decoder_layout(model), plan_stages(model, 2)
    stages = [build_stage(model, layout, plan, s, copy_model=True) for s in (0, 1)]
    names = [set(stage.lm.state_dict()) for stage in stages]
    assert "model.input_encoder.embed_tokens.weight" in names[0]
    assert {"lm_head.weight", "model.norm.weight"} <= names[1]
    assert not names[0] & names[1]
    assert isinstance(stages[0].lm.model.layers[3], PassThrough)
    merged = merge_stage_weights([s.lm.state_dict() for s in stages])
    assert merged.keys() == model.state_dict().keys()


def test_tied_weights_across_stages_are_refused(model):
    model.lm_head.weight = model.model.input_encoder.embed_tokens.weight
    layout = decoder_layout(model)
    with pytest.raises(ValueError, match="share one tensor but would sit on stages"):
        check_no_cross_stage_ties(model, layout, plan_stages(model, 2))


@pytest.mark.parametrize(
    ("schedule", "placement"),
    [
        ("GPipe", ((0,), (1,))),
        ("1F1B", ((0,), (1,))),
        ("Interleaved1F1B", ((0, 2), (1, 3))),
        ("LoopedBFS", ((0, 2), (1, 3))),
        ("InterleavedZeroBubble", ((0, 2), (1, 3))),
        ("ZBVZeroBubble", ((0, 3), (1, 2))),
        ("DualPipeV", ((0, 3), (1, 2))),
    ],
)
def test_schedule_placement(schedule, placement):
    choice = choose_schedule(schedule, 2)
    assert choice.rank_stages == placement
    assert choice.num_stages == sum(len(s) for s in placement)


def test_every_schedule_is_covered_and_bad_choices_are_explained():
    assert len(SCHEDULES) == 7
    assert choose_schedule("interleaved1f1b", 2, stages_per_rank=3).rank_stages == (
        (0, 2, 4),
        (1, 3, 5),
    )
    with pytest.raises(ValueError, match="Unknown schedule name"):
        choose_schedule("Zigzag", 2)
    with pytest.raises(ValueError, match="1F1B runs 1 stage"):
        choose_schedule("1F1B", 2, stages_per_rank=2)
    with pytest.raises(ValueError, match="ZBVZeroBubble runs 2 stage"):
        choose_schedule("ZBVZeroBubble", 2, stages_per_rank=3)
