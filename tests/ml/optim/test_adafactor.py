"""Adafactor trains, keeps factored state, and costs less memory than AdamW."""

import copy

import pytest
import torch

from forgather.ml.optim import Adafactor, AdamW


def regression_problem(seed=0):
    """A linear regression y = x W* with a 32x16 weight and a bias."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 32, generator=gen)
    y = x @ torch.randn(32, 16, generator=gen)
    torch.manual_seed(seed)
    return torch.nn.Linear(32, 16), x, y


def train(model, optimizer, x, y, steps):
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def state_bytes(optimizer):
    return sum(
        t.numel() * t.element_size()
        for state in optimizer.state.values()
        for t in state.values()
        if torch.is_tensor(t)
    )


@pytest.mark.parametrize("beta1", [None, 0.9])
def test_adafactor_decreases_loss(beta1):
    model, x, y = regression_problem()
    losses = train(model, Adafactor(model.parameters(), lr=0.05, beta1=beta1), x, y, 100)
    assert losses[-1] < 0.05 * losses[0]


def test_adafactor_state_is_factored_and_smaller_than_adamw():
    model, x, y = regression_problem()
    ada = Adafactor(model.parameters(), lr=0.01)
    train(model, ada, x, y, 1)
    weight_state = ada.state[model.weight]
    assert weight_state["row_var"].shape == (16,)
    assert weight_state["col_var"].shape == (32,)
    assert ada.state[model.bias]["var"].shape == (16,)

    model2, x, y = regression_problem()
    adamw = AdamW(model2.parameters(), lr=0.01)
    train(model2, adamw, x, y, 1)
    # Adafactor: 16 + 32 + 16 floats (+ step counters); AdamW: 2 * (16*32 + 16) floats.
    assert state_bytes(ada) * 10 < state_bytes(adamw)


def test_adafactor_weight_decay_and_bf16_params():
    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.ones(4, 4, dtype=torch.bfloat16))
    opt = Adafactor([param], lr=0.1, weight_decay=0.5)
    param.grad = torch.zeros_like(param)
    opt.step()
    # A zero gradient gives a zero update; only decay acts: 1 * (1 - 0.1 * 0.5).
    assert param.dtype == torch.bfloat16
    assert torch.allclose(param.float(), torch.full((4, 4), 0.95), atol=1e-2)


def test_adafactor_state_dict_roundtrip():
    model, x, y = regression_problem()
    opt = Adafactor(model.parameters(), lr=0.05, beta1=0.9)
    train(model, opt, x, y, 3)
    model2, _, _ = regression_problem()
    model2.load_state_dict(model.state_dict())
    opt2 = Adafactor(model2.parameters(), lr=0.05, beta1=0.9)
    # deepcopy: load_state_dict shares same-device tensors with the source optimizer
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert train(model, opt, x, y, 3) == train(model2, opt2, x, y, 3)
