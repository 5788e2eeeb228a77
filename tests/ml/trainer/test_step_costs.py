"""What a training step costs outside forward and backward: host syncs, optimizer kernels.

Steps that do not log read no value of a tensor the step computed (on a GPU
each such read waits for the device): the window keeps losses and gradient
norms as tensors until the logging step, and the logged figures are the same
as when every step logs. The default optimizer is torch's fused AdamW, its state made
before the first forward pass.
"""

from __future__ import annotations

import collections
import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from forgather.ml.optim import SGD, AdamW, fused_supported
from forgather.ml.trainer import TrainerCallback
from forgather.ml.trainer.optimization import materialize_adam_state

from . import tiny_lm
from .tiny_lm import make_trainer


class SyncSites(TorchDispatchMode):
    """Counts reads of a tensor's value into Python (`_local_scalar_dense`) by calling function."""

    def __init__(self):
        super().__init__()
        self.sites: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.split(".")[0] == "_local_scalar_dense":
            ours = [f.name for f in traceback.extract_stack() if "/forgather/" in f.filename]
            self.sites[ours[-1] if ours else "?"] += 1
        return func(*args, **(kwargs or {}))


class WatchSteps(TrainerCallback):
    """Records the sync sites of steps 2..4 (step 1 builds the optimizer state)."""

    def __init__(self):
        self.mode = SyncSites()
        self.active = False

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 1:
            self.mode.__enter__()
            self.active = True

    def on_train_end(self, args, state, control, **kwargs):
        if self.active:
            self.mode.__exit__(None, None, None)


def run(tmp_path, name, logging_steps, watch=None):
    trainer = make_trainer(
        str(tmp_path / name), callbacks=[watch] if watch else [], max_steps=4,
        logging_steps=logging_steps, eval_strategy="no", save_strategy="no", report_to="none",
    )  # fmt: skip
    trainer.optimizer_factory = None  # the default: AdamW from args
    trainer.train()
    return trainer


def test_steps_that_do_not_log_read_no_tensor_and_log_the_same_figures(tmp_path):
    watch = WatchSteps()
    quiet = run(tmp_path, "quiet", logging_steps=4, watch=watch)
    # Steps 2..4: only the loader's CPU labels are counted (one read per micro-batch,
    # before the batch moves to the device); the window's loss and gradient norm are
    # read once, at the logging step.
    micro_batches = 3 * 2
    assert watch.mode.sites == {
        "count_target_tokens": micro_batches,
        "_window_loss_total": 1,
        "_reduce_mean": 1,
    }
    every = run(tmp_path, "every", logging_steps=1)
    losses = [e["loss"] for e in every.state.log_history if "loss" in e]
    norms = [e["grad_norm"] for e in every.state.log_history if "grad_norm" in e]
    (entry,) = [e for e in quiet.state.log_history if "loss" in e]
    assert entry["loss"] == pytest.approx(sum(losses) / 4, rel=1e-6)
    assert entry["grad_norm"] == pytest.approx(sum(norms) / 4, rel=1e-6)
    assert entry["num_input_tokens_seen"] == every.state.log_history[-2]["num_input_tokens_seen"]


def test_default_optimizer_is_fused_and_clipping_is_foreach(tmp_path):
    trainer = make_trainer(str(tmp_path), max_steps=1, eval_strategy="no", save_strategy="no")
    trainer.optimizer_factory = None
    with torch.profiler.profile() as prof:
        trainer.train()
    assert all(group["fused"] for group in trainer.optimizer.param_groups)
    ops = {e.key for e in prof.key_averages()}
    assert {"aten::_fused_adamw_", "aten::_foreach_norm", "aten::_foreach_mul_"} <= ops


def test_our_adamw_and_sgd_choose_fused_unless_told():
    model = tiny_lm.make_model()
    params = list(model.parameters())
    assert fused_supported(params)
    assert AdamW(params).defaults["fused"] is True
    assert AdamW(model.named_parameters()).defaults["fused"] is True
    assert AdamW([{"params": params[:1]}, {"params": params[1:], "lr": 0.1}]).defaults["fused"]
    assert SGD(params, lr=0.1, momentum=0.9).defaults["fused"] is True
    # The caller's choice, and what the fused kernels cannot take, keep torch's default.
    assert not AdamW(params, foreach=True).defaults["fused"]
    assert not AdamW(params, fused=False).defaults["fused"]
    assert not AdamW(params, differentiable=True).defaults["fused"]
    assert not fused_supported([torch.zeros(2, dtype=torch.long)])


def test_fused_adamw_steps_as_torch_default_does():
    def trained(optimizer_cls):
        model = tiny_lm.make_model()
        optimizer = optimizer_cls(model.parameters(), lr=1e-2, weight_decay=0.1)
        batch = tiny_lm.collate(tiny_lm.token_rows(4))
        model.drop.p = 0.0
        for _ in range(3):
            model(**batch)["loss"].backward()
            optimizer.step()
            optimizer.zero_grad()
        return model.state_dict()

    ours, torchs = trained(AdamW), trained(torch.optim.AdamW)
    for name in ours:
        torch.testing.assert_close(ours[name], torchs[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", [{}, {"fused": True}, {"foreach": True}, {"amsgrad": True}])
def test_adam_state_made_before_the_first_forward_is_the_state_torch_makes(options):
    """The trainer makes AdamW's moments before the first forward (heap order, less peak
    RSS); the steps, the state and a checkpoint of it are exactly torch's lazy ones."""

    def trained(materialize):
        model = tiny_lm.make_model()
        model.drop.p = 0.0
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1, **options)
        if materialize:
            assert materialize_adam_state(optimizer) == len(list(model.parameters()))
            assert materialize_adam_state(optimizer) == 0  # state already there: kept
        batch = tiny_lm.collate(tiny_lm.token_rows(4))
        for _ in range(2):
            model(**batch)["loss"].backward()
            optimizer.step()
            optimizer.zero_grad()
        return model.state_dict(), optimizer.state_dict()

    (weights, state), (lazy_weights, lazy_state) = trained(True), trained(False)
    for name in weights:
        assert torch.equal(weights[name], lazy_weights[name]), name
    assert state["param_groups"] == lazy_state["param_groups"]
    for index, moments in lazy_state["state"].items():
        assert moments.keys() == state["state"][index].keys()
        for key, value in moments.items():
            made = state["state"][index][key]
            assert made.dtype == value.dtype and made.device == value.device
            assert torch.equal(made, value), (index, key)
    assert materialize_adam_state(torch.optim.SGD(tiny_lm.make_model().parameters(), lr=0.1)) == 0
