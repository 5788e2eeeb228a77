"""CPU threads fitted to the machine, the oversubscription warning, and `torch_compile="auto"`."""

from __future__ import annotations

import pytest
import torch

from forgather.ml.trainer import TrainingArguments
from forgather.ml.trainer.threads import (
    available_cores,
    fitted_threads,
    oversubscription_message,
)
from forgather.ml.trainer.torch_settings import (
    AUTO_COMPILE_MIN_STEPS,
    compile_decision,
    compiler_available,
    planned_steps,
)

from .tiny_lm import make_trainer

CORES = available_cores()


@pytest.fixture
def torch_default_threads(monkeypatch):
    """Torch at its default (one thread per available core), no thread variables; restored."""
    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    torch.set_num_threads(CORES)
    yield
    torch.set_num_threads(before)


def build(tmp_path, **overrides):
    return make_trainer(str(tmp_path), eval_strategy="no", save_strategy="no", **overrides)


def test_fitted_threads_share_the_cores_among_local_ranks():
    assert fitted_threads(16, 1) == 16
    assert fitted_threads(16, 4) == 4
    assert fitted_threads(2, 4) == 1
    assert fitted_threads(8, 0) == 8


@pytest.mark.skipif(CORES < 2, reason="needs 2 cores to share")
def test_trainer_fits_threads_unless_the_user_chose(tmp_path, monkeypatch, torch_default_threads):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # as torchrun sets it
    build(tmp_path / "a")
    assert torch.get_num_threads() == CORES // 2
    # OMP_NUM_THREADS names the count: torch keeps what it read from it.
    torch.set_num_threads(CORES)
    monkeypatch.setenv("OMP_NUM_THREADS", str(CORES))
    build(tmp_path / "b")
    assert torch.get_num_threads() == CORES
    monkeypatch.delenv("OMP_NUM_THREADS")
    # A count the program set itself stays; torch_threads sets one; 0 leaves torch alone.
    torch.set_num_threads(1)
    build(tmp_path / "c")
    assert torch.get_num_threads() == 1
    build(tmp_path / "d", torch_threads=2)
    assert torch.get_num_threads() == 2
    torch.set_num_threads(CORES)
    build(tmp_path / "e", torch_threads=0)
    assert torch.get_num_threads() == CORES
    with pytest.raises(ValueError, match="torch_threads"):
        TrainingArguments(str(tmp_path), torch_threads=-1)


def test_oversubscription_message_from_load_and_cores():
    # Alone on the machine: the load is this process's own.
    assert oversubscription_message(load=2.0, own_load=2.0, cores=2, threads=2) is None
    assert oversubscription_message(load=15.0, own_load=16.0, cores=16, threads=16) is None
    # A neighbour keeping a core busy while torch runs a thread per core: warn, and say
    # how many threads fit (the case: 2 threads under load, 9x slower than 1).
    message = oversubscription_message(load=3.0, own_load=1.0, cores=2, threads=2)
    assert message is not None and "OMP_NUM_THREADS=1" in message and "9x" in message
    # One thread beside the same neighbour fits in 2 cores.
    assert oversubscription_message(load=2.0, own_load=1.0, cores=2, threads=1) is None
    # Large machines tolerate a little noise in the load average.
    assert oversubscription_message(load=17.0, own_load=16.0, cores=16, threads=16) is None
    assert "OMP_NUM_THREADS=8" in oversubscription_message(24.0, 16.0, 16, 16)
    # Already one thread: no advice to set what is set (it said "set OMP_NUM_THREADS=1").
    crowded = oversubscription_message(load=4.0, own_load=1.0, cores=2, threads=1)
    assert crowded.endswith("stop the other work, or expect slower steps.")
    assert "OMP_NUM_THREADS" not in crowded


def test_compile_decision_is_the_setting_or_the_run_length():
    assert compile_decision(True, steps=1, compilable=False) is True
    assert compile_decision(False, steps=10**6, compilable=True) is False
    assert compile_decision("auto", AUTO_COMPILE_MIN_STEPS, compilable=True) is True
    assert compile_decision("auto", AUTO_COMPILE_MIN_STEPS - 1, compilable=True) is False
    assert compile_decision("auto", 10**6, compilable=False) is False
    assert compile_decision("auto", 50, compilable=True, min_steps=10) is True
    # The (slow) compiler check is made only for a long run.
    asked = []
    assert compile_decision("auto", 5, lambda: asked.append(1) or True) is False
    assert asked == []


def test_planned_steps_from_max_steps_or_epochs(tmp_path):
    def args(**kw):
        return TrainingArguments(str(tmp_path), per_device_train_batch_size=4, **kw)

    assert planned_steps(args(max_steps=7), dataset_length=1000) == 7
    # ceil(2.5 epochs * ceil(10 / 4) batches / accumulation 2)
    assert planned_steps(args(num_train_epochs=2.5, gradient_accumulation_steps=2), 10) == 4
    assert planned_steps(args(num_train_epochs=1, epoch_train_steps=30), None) == 30


def test_auto_compiles_long_runs_only_and_true_false_keep_their_meaning(tmp_path):
    assert TrainingArguments(str(tmp_path)).torch_compile == "auto"
    short = build(tmp_path / "short", max_steps=4)
    assert short._should_compile() is False
    long = build(tmp_path / "long", max_steps=AUTO_COMPILE_MIN_STEPS)
    assert long._should_compile() is compiler_available("cpu")
    epochs = build(tmp_path / "epochs", max_steps=-1, num_train_epochs=10**4)
    assert epochs._should_compile() is compiler_available("cpu")  # 8 steps per epoch
    assert build(tmp_path / "on", max_steps=4, torch_compile=True)._should_compile() is True
    off = build(tmp_path / "off", max_steps=10**6, torch_compile=False)
    assert off._should_compile() is False
    # A short run trains uncompiled.
    short.train()
    assert short.model._compiled_call_impl is None
    with pytest.raises(ValueError, match="torch_compile"):
        TrainingArguments(str(tmp_path), torch_compile="yes")
