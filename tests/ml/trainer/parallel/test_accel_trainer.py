"""`AccelTrainer` on 2 CPU processes (gloo) against one process with the same global batch.

One torchrun job trains every distributed run of this module (DDP, FSDP with
full and sharded checkpoints, resumes, bf16, an unsynchronised control, and
runs whose ranks hold different numbers of target tokens); the references are
single-process `Trainer` runs with twice the batch.

Tolerance: 2 ranks sum their gradients in another order than one process
does, so fp32 results agree to rounding: per-step losses and gradient norms
within 1e-5 (relative), final weights within 1e-5 (absolute; they are O(0.1)).
A resumed run repeats the uninterrupted one exactly (same processes, same order).
"""

from __future__ import annotations

import pytest
import torch

from forgather.ml.model import load_model
from forgather.ml.trainer import ResumableShuffleSampler
from forgather.ml.trainer.checkpoint import load_model_weights
from forgather.ml.trainer.parallel.distributed import RankShardSampler, check_joined
from forgather.ml.trainer.step_tokens import count_target_tokens

from .conftest import (
    in_process,
    max_weight_difference,
    per_step,
    result,
    torchrun,
    weights,
    write_spec,
)
from .worker import MaskingCollator, uneven_rows

RTOL = 1e-5
WEIGHT_ATOL = 1e-5

# Per device: 2 ranks x batch 4 x accumulation 2 = the reference's batch 8 x accumulation 2.
TWO_RANKS = {"batch": 4, "accumulation": 2, "max_steps": 4, "save_steps": 2}
ONE_RANK = {**TWO_RANKS, "batch": 8}
RUNS = [
    {"name": "ref", "trainer": "trainer", **ONE_RANK, "eval_batch": 8, "evaluate": True},
    {"name": "ref_bf16", "trainer": "trainer", **ONE_RANK, "bf16": True},
    {"name": "ddp", "trainer": "accel", **TWO_RANKS, "evaluate": True, "save_local": True},
    {"name": "fsdp", "trainer": "accel", **TWO_RANKS, "options": {"strategy": "fsdp"}},
    {"name": "fsdp_sharded", "trainer": "accel", **TWO_RANKS,
     "options": {"strategy": "fsdp", "state_dict_type": "sharded"}},
    {"name": "bf16", "trainer": "accel", **TWO_RANKS, "bf16": True},
    {"name": "alone", "trainer": "trainer", **TWO_RANKS, "shard": True, "save_local": True},
    {"name": "ref_uneven", "trainer": "trainer", **ONE_RANK, "max_steps": 3, "uneven": True},
    {"name": "ddp_uneven", "trainer": "accel", **TWO_RANKS, "max_steps": 3, "uneven": True},
    {"name": "fsdp_uneven", "trainer": "accel", **TWO_RANKS, "max_steps": 3, "uneven": True,
     "options": {"strategy": "fsdp"}},
]  # fmt: skip
REFERENCES = ("ref", "ref_bf16", "ref_uneven")  # one process, trained by the test itself
RESUMES = [
    {"name": "ddp_resumed", "trainer": "accel", **TWO_RANKS, "resume": "ddp"},
    {"name": "fsdp_resumed", "trainer": "accel", **TWO_RANKS, "resume": "fsdp",
     "options": {"strategy": "fsdp"}},
    {"name": "fsdp_sharded_resumed", "trainer": "accel", **TWO_RANKS, "resume": "fsdp_sharded",
     "options": {"strategy": "fsdp", "state_dict_type": "sharded"}},
]  # fmt: skip


@pytest.fixture(scope="module")
def out(tmp_path_factory, model_dir):
    out = tmp_path_factory.mktemp("accel")
    resumes = [
        {**r, "resume": str(out / r["resume"] / "checkpoints" / "checkpoint-2")} for r in RESUMES
    ]
    runs = [dict(r, save_model=str(out / "fsdp_model")) if r["name"] == "fsdp" else r for r in RUNS]
    spec = write_spec(out, model_dir, runs + resumes)
    in_process(spec, *REFERENCES)
    torchrun(2, spec, *[r["name"] for r in RUNS + resumes if r["name"] not in REFERENCES])
    return out


def assert_same_steps(out, name: str, reference: str, key: str, rtol: float = RTOL) -> None:
    got, want = per_step(out, name, key), per_step(out, reference, key)
    assert got.keys() == want.keys() and got
    assert got == pytest.approx(want, rel=rtol), key


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ddp", "fsdp", "fsdp_sharded"])
def test_two_processes_match_one_with_the_same_global_batch(out, name):
    assert_same_steps(out, name, "ref", "loss")
    # The norm before clipping: it would be twice as large if gradients were summed, not averaged.
    assert_same_steps(out, name, "ref", "grad_norm")
    assert max_weight_difference(weights(out, name), weights(out, "ref")) < WEIGHT_ATOL


def target_counts_of_first_step() -> list[int]:
    """Targets each of 2 ranks holds in the first step of the `uneven` runs (data seed 3)."""
    rows = uneven_rows(64)
    first_step = list(ResumableShuffleSampler(64, seed=3))[:16]  # 2 ranks x 4 rows x 2
    return [
        count_target_tokens(MaskingCollator()([rows[i] for i in first_step[rank::2]]))
        for rank in (0, 1)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ddp_uneven", "fsdp_uneven"])
def test_loss_and_gradient_are_the_global_token_mean(out, name):
    """Ranks with different numbers of targets: one process on the same global batch."""
    first, second = target_counts_of_first_step()
    assert first != second  # the ranks' shares really differ
    assert_same_steps(out, name, "ref_uneven", "loss")
    assert_same_steps(out, name, "ref_uneven", "grad_norm")  # the gradient, before clipping
    assert max_weight_difference(weights(out, name), weights(out, "ref_uneven")) < WEIGHT_ATOL


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ddp", "fsdp"])
def test_token_counts_are_totals_over_the_ranks(out, name):
    seen = per_step(out, name, "num_input_tokens_seen")
    assert seen == per_step(out, "ref", "num_input_tokens_seen")
    assert seen[1] == 2 * 4 * 2 * 32  # ranks x batch x accumulation x tokens per row


@pytest.mark.slow
def test_both_ranks_log_the_averaged_loss(out):
    assert per_step(out, "ddp", "loss", rank=1) == per_step(out, "ddp", "loss", rank=0)


@pytest.mark.slow
def test_gradients_are_averaged_across_ranks(out):
    """Both ranks hold the one-process weights; the unsynchronised control does not."""
    reference = weights(out, "ref")
    ddp = [torch.load(out / f"ddp-rank{r}-local.pt", weights_only=True) for r in (0, 1)]
    assert max_weight_difference(ddp[0], ddp[1]) == 0.0  # replicas stay identical
    assert max_weight_difference(ddp[0], reference) < WEIGHT_ATOL
    # The same check on ranks that train alone on their shard (what a CPU job
    # launched without a joined process group does) fails by a wide margin.
    alone = [torch.load(out / f"alone-rank{r}-local.pt", weights_only=True) for r in (0, 1)]
    assert max_weight_difference(alone[0], alone[1]) > 100 * WEIGHT_ATOL
    assert max_weight_difference(alone[0], reference) > 100 * WEIGHT_ATOL


@pytest.mark.slow
def test_evaluation_is_averaged_over_the_ranks_shares(out):
    ddp, ref = result(out, "ddp")["metrics"], result(out, "ref")["metrics"]
    assert ddp["eval_loss"] == pytest.approx(ref["eval_loss"], rel=RTOL)


@pytest.mark.slow
def test_bf16_autocast_tracks_the_one_process_bf16_run(out):
    # bf16 matmuls round to 8 bits of mantissa; different shards round differently.
    assert_same_steps(out, "bf16", "ref_bf16", "loss", rtol=1e-2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ddp", "fsdp", "fsdp_sharded"])
def test_resumed_run_continues_exactly(out, name):
    resumed, uninterrupted = per_step(out, f"{name}_resumed", "loss"), per_step(out, name, "loss")
    assert resumed == uninterrupted and max(resumed) == 4
    assert max_weight_difference(weights(out, f"{name}_resumed"), weights(out, name)) == 0.0


@pytest.mark.slow
def test_full_checkpoint_is_the_single_process_format(out, model_dir):
    checkpoint = out / "fsdp" / "checkpoints" / "checkpoint-4"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    assert sorted(p.name for p in checkpoint.glob("rng_state-*.pt")) == [
        "rng_state-0.pt",
        "rng_state-1.pt",
    ]
    model = load_model(model_dir)
    load_model_weights(model, str(checkpoint / "model.safetensors"))  # Trainer's own loader
    assert max_weight_difference(model.state_dict(), weights(out, "fsdp")) == 0.0


@pytest.mark.slow
def test_fsdp_save_model_gathers_a_hugging_face_model_directory(out):
    model = load_model(out / "fsdp_model")  # transformers' from_pretrained, remote code
    assert max_weight_difference(model.state_dict(), weights(out, "fsdp")) == 0.0
    assert (out / "fsdp_model" / "config.json").is_file()


@pytest.mark.slow
def test_sharded_checkpoint_holds_one_shard_per_rank(out):
    checkpoint = out / "fsdp_sharded" / "checkpoints" / "checkpoint-2"
    assert not (checkpoint / "model.safetensors").exists()
    assert sorted(p.name for p in (checkpoint / "sharded").iterdir()) == [
        ".metadata", "__0_0.distcp", "__1_0.distcp",
    ]  # fmt: skip


def test_check_joined_refuses_ranks_that_would_train_alone():
    check_joined(1, 1)
    with pytest.raises(
        RuntimeError, match="started 2 processes but this one trains in a group of 1"
    ):
        check_joined(2, 1)


def test_rank_shards_cover_each_global_batch_once_and_resume():
    def shards(state=None):
        samplers = [RankShardSampler(ResumableShuffleSampler(10, seed=1), 2, r) for r in (0, 1)]
        if state is not None:
            for s in samplers:
                s.load_state_dict(state)
        return samplers

    whole = list(ResumableShuffleSampler(10, seed=1))
    first, second = (list(s) for s in shards())
    assert len(first) == len(second) == 5
    assert first == whole[0::2] and second == whole[1::2]
    # Positions are those of the shared sampler: resume after 3 indices per rank.
    sampler = shards()[0]
    iterator = iter(sampler)
    taken = [next(iterator) for _ in range(3)]
    assert taken == first[:3]
    assert list(shards(sampler.state_dict())[0]) == first[3:]


def test_rank_shards_drop_an_incomplete_last_group():
    shard = RankShardSampler(ResumableShuffleSampler(5, shuffle=False), 2, 1)
    assert list(shard) == [1, 3] and len(shard) == 2


def test_unknown_strategy_is_refused():
    from forgather.ml.trainer import AccelTrainer, TrainingArguments

    with pytest.raises(ValueError, match="strategy must be one of"):
        AccelTrainer(
            torch.nn.Linear(1, 1), TrainingArguments("unused", report_to="none"), strategy="zero3"
        )
