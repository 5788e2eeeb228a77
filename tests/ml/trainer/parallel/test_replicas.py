"""Data-parallel replicas start from one set of weights and stay identical.

Each rank initialises the model afresh from its own seed (what processes that
build a model without a common seed do), so the copies differ before the
trainer sees them. Every rank records a SHA-256 of the parameters it holds as
built, when training starts (after the trainer's setup) and when it ends:
the whole model for DDP and FSDP (FSDP's shards gathered), this rank's stages
for a pipeline. Jobs of 2 ranks (DDP, FSDP) and 4 ranks (DDP, FSDP, and 2
pipeline stages x 2 replicas); models are tiny and runs 2 steps long.
"""

from __future__ import annotations

import pytest

from .conftest import result, torchrun, write_spec

STEPS = {"batch": 4, "accumulation": 1, "max_steps": 2, "per_rank_init": True}
DATA_PARALLEL = [
    {"name": "ddp", "trainer": "accel", **STEPS},
    {"name": "fsdp", "trainer": "accel", **STEPS, "options": {"strategy": "fsdp"}},
]
PIPELINE = {"name": "pp2_dp2", "trainer": "pipeline", **STEPS,
            "options": {"pipeline_parallel_size": 2}}  # fmt: skip


@pytest.fixture(scope="module")
def two(tmp_path_factory, model_dir):
    out = tmp_path_factory.mktemp("replicas2")
    torchrun(2, write_spec(out, model_dir, DATA_PARALLEL))
    return out


@pytest.fixture(scope="module")
def four(tmp_path_factory, model_dir):
    out = tmp_path_factory.mktemp("replicas4")
    torchrun(4, write_spec(out, model_dir, [*DATA_PARALLEL, PIPELINE]))
    return out


def digests(out, name: str, world: int) -> list[dict]:
    return [result(out, name, rank)["digests"] for rank in range(world)]


def assert_one_model(out, name: str, world: int) -> None:
    ranks = digests(out, name, world)
    assert len({d["built"] for d in ranks}) == world  # the ranks really built different weights
    # Every rank trains rank 0's model (FSDP: the gathered shards are rank 0's tensors) ...
    assert {d["start"] for d in ranks} == {ranks[0]["built"]}
    # ... and all end with the same one.
    assert len({d["end"] for d in ranks}) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ddp", "fsdp"])
def test_two_ranks_train_rank_zeros_model(two, name):
    assert_one_model(two, name, 2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ddp", "fsdp"])
def test_four_ranks_train_rank_zeros_model(four, name):
    assert_one_model(four, name, 4)


@pytest.mark.slow
def test_pipeline_replicas_of_each_stage_start_and_stay_identical(four):
    ranks = [result(four, "pp2_dp2", rank) for rank in range(4)]
    assert len({r["digests"]["built"] for r in ranks}) == 4
    for stage in (0, 1):
        replicas = [r for r in ranks if r["pp_rank"] == stage]
        assert sorted(r["dp_rank"] for r in replicas) == [0, 1]
        first = next(r for r in replicas if r["dp_rank"] == 0)
        assert {r["digests"]["start"] for r in replicas} == {first["digests"]["start"]}
        assert len({r["digests"]["end"] for r in replicas}) == 1
    # The two stages hold different parameters (the digests are of what each rank holds).
    assert len({r["digests"]["start"] for r in ranks}) == 2
