"""`PipelineTrainer` on CPU processes (gloo) against the unsplit model in one process.

One 2-rank torchrun job trains the model cut into stages under every schedule
torch 2.13 has, then a resume pair (with merged checkpoints and `save_model`);
a 4-rank job runs 2 stages x 2 replicas. The reference is a single-process
`Trainer` with the same global batch; the `uneven` runs mask a different
number of labels in every row, so micro-batches and replicas hold different
numbers of target tokens. All data are packed rows of two
documents whose `position_ids` restart at 0, so a stage that did not receive
the positions (or the document mask built from them) would compute other losses.

Tolerance: stages exchange activations exactly, but gradients are summed
over chunks instead of over the whole batch, and the norm is reduced over
stages, so fp32 results agree to rounding: losses and gradient norms within
1e-5 (relative), final weights within 1e-5 (absolute). A resumed run repeats
the uninterrupted one exactly.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from forgather.ml.model import load_model
from forgather.ml.trainer import merge_pipeline_checkpoint
from forgather.ml.trainer.parallel.pipeline_schedules import SCHEDULES

from .conftest import (
    in_process,
    max_weight_difference,
    per_step,
    result,
    torchrun,
    weights,
    write_spec,
)

RTOL = 1e-5
WEIGHT_ATOL = 1e-5

STEP = {"accumulation": 2, "max_steps": 3, "evaluate": True}
RUNS = [
    {"name": "ref", "trainer": "trainer", "batch": 8, **STEP, "eval_batch": 4},
    *[{"name": s, "trainer": "pipeline", "batch": 8, **STEP, "options": {"schedule": s}} for s in SCHEDULES],
    {"name": "pp2_dp2", "trainer": "pipeline", "batch": 4, **STEP,
     "options": {"schedule": "1F1B", "pipeline_parallel_size": 2}},
    {"name": "first", "trainer": "pipeline", "batch": 4, "max_steps": 6, "save_steps": 3,
     "options": {"schedule": "Interleaved1F1B", "merge_checkpoints": True, "balance": "parameters"}},
    {"name": "resumed", "trainer": "pipeline", "batch": 4, "max_steps": 6, "save_steps": 3,
     "options": {"schedule": "Interleaved1F1B", "balance": "parameters"}},
    {"name": "ref_uneven", "trainer": "trainer", "batch": 8, "accumulation": 2, "max_steps": 3,
     "uneven": True},
    {"name": "pp2_uneven", "trainer": "pipeline", "batch": 8, "accumulation": 2, "max_steps": 3,
     "uneven": True, "options": {"schedule": "1F1B"}},
    {"name": "pp2_dp2_uneven", "trainer": "pipeline", "batch": 4, "accumulation": 2,
     "max_steps": 3, "uneven": True, "options": {"schedule": "1F1B", "pipeline_parallel_size": 2}},
]  # fmt: skip


@pytest.fixture(scope="module")
def out(tmp_path_factory, model_dir):
    out = tmp_path_factory.mktemp("pipeline")
    runs = {r["name"]: dict(r) for r in RUNS}
    runs["first"]["save_model"] = str(out / "merged_model")
    runs["resumed"]["resume"] = str(out / "first" / "checkpoints" / "checkpoint-3")
    spec = write_spec(out, model_dir, list(runs.values()))
    in_process(spec, "ref", "ref_uneven")
    torchrun(2, spec, *SCHEDULES, "first", "resumed", "pp2_uneven")
    return out


@pytest.fixture(scope="module")
def replicated(out):
    """2 stages x 2 replicas: 4 ranks."""
    torchrun(4, out / "spec.json", "pp2_dp2", "pp2_dp2_uneven")
    return out


def assert_matches_reference(out, name: str, reference: str = "ref") -> None:
    for key in ("loss", "grad_norm"):
        got, want = per_step(out, name, key), per_step(out, reference, key)
        assert got.keys() == want.keys() and got
        assert got == pytest.approx(want, rel=RTOL), key
    if "eval_loss" in result(out, reference)["metrics"]:
        assert result(out, name)["metrics"]["eval_loss"] == pytest.approx(
            result(out, reference)["metrics"]["eval_loss"], rel=RTOL
        )
    assert max_weight_difference(weights(out, name), weights(out, reference)) < WEIGHT_ATOL


@pytest.mark.slow
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_two_stages_match_the_unsplit_model(out, schedule):
    assert_matches_reference(out, schedule)
    # Every stage logs the loss only the last stage computes.
    assert per_step(out, schedule, "loss", rank=1) == per_step(out, schedule, "loss", rank=0)


@pytest.mark.slow
def test_two_stages_times_two_replicas_match_the_same_global_batch(replicated):
    assert_matches_reference(replicated, "pp2_dp2")
    assert len({tuple(per_step(replicated, "pp2_dp2", "loss", r).values()) for r in range(4)}) == 1


@pytest.mark.slow
def test_uneven_targets_give_the_global_token_mean(out):
    """Micro-batches with different numbers of targets: the one-process loss and gradient."""
    assert_matches_reference(out, "pp2_uneven", "ref_uneven")


@pytest.mark.slow
def test_uneven_replicas_give_the_global_token_mean_and_total_token_counts(replicated):
    assert_matches_reference(replicated, "pp2_dp2_uneven", "ref_uneven")
    # Every replica's tokens count once, however many stages read them.
    for rank in range(4):
        seen = per_step(replicated, "pp2_dp2_uneven", "num_input_tokens_seen", rank)
        assert seen == per_step(replicated, "ref_uneven", "num_input_tokens_seen")


@pytest.mark.slow
def test_resumed_pipeline_continues_exactly(out):
    resumed, uninterrupted = per_step(out, "resumed", "loss"), per_step(out, "first", "loss")
    assert resumed == uninterrupted and max(resumed) == 6
    assert max_weight_difference(weights(out, "resumed"), weights(out, "first")) == 0.0


@pytest.mark.slow
def test_checkpoints_hold_each_stage_and_merge_into_one_model(out, tmp_path):
    checkpoint = out / "first" / "checkpoints" / "checkpoint-6"
    # 2 ranks x 2 stages (Interleaved1F1B): four stage directories, two optimizers.
    assert sorted(p.name for p in checkpoint.glob("stage-*")) == [f"stage-0{i}" for i in range(4)]
    assert sorted(p.name for p in checkpoint.glob("optimizer-*")) == [
        "optimizer-pp0.pt",
        "optimizer-pp1.pt",
    ]
    final = weights(out, "first")
    merged = merge_pipeline_checkpoint(str(checkpoint), str(tmp_path))
    assert max_weight_difference(load_file(merged), final) == 0.0
    # merge_checkpoints=True wrote the same file into the checkpoint itself.
    assert max_weight_difference(load_file(checkpoint / "model.safetensors"), final) == 0.0
    # save_model() wrote a Hugging Face model directory that loads with plain transformers.
    model = load_model(out / "merged_model")
    assert max_weight_difference(model.state_dict(), final) == 0.0
    assert model(input_ids=torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 128)
