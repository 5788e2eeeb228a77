"""Per-row token choice: greedy rows, seeded sampled rows independent of their batch,
top-k / top-p cut-offs and the model's log-probabilities."""

from __future__ import annotations

import math

import torch

from forgather.serve.sampling import SamplingError, SamplingParams, choose_tokens, make_generator

CPU = torch.device("cpu")


def _choose(logits, params):
    return choose_tokens(logits, params, [make_generator(p.seed, CPU) for p in params])


def test_greedy_rows_take_the_argmax():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0))
    params = [SamplingParams(max_tokens=1, temperature=0)] * 3 + [
        SamplingParams(max_tokens=1, temperature=2.0, top_k=1)
    ]
    assert [c.token_id for c in _choose(logits, params)] == logits.argmax(-1).tolist()


def test_a_seeded_row_samples_the_same_alone_or_in_a_batch():
    logits = torch.randn(3, 200, generator=torch.Generator().manual_seed(1))
    seeded = SamplingParams(max_tokens=1, temperature=1.0, seed=42)
    others = [SamplingParams(max_tokens=1, temperature=1.0, seed=s) for s in (1, 2)]

    def draws(rows, params):
        generators = [make_generator(p.seed, CPU) for p in params]
        return [
            [c.token_id for c in choose_tokens(logits[rows], params, generators)] for _ in range(20)
        ]

    alone = [step[0] for step in draws([1], [seeded])]
    batched = [step[1] for step in draws([0, 1, 2], [others[0], seeded, others[1]])]
    assert alone == batched
    assert len(set(alone)) > 1  # it does sample


def test_top_k_and_top_p_limit_the_candidates():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = probs.log()[None]
    generator = make_generator(0, CPU)
    top_k = SamplingParams(max_tokens=1, top_k=2)
    top_p = SamplingParams(max_tokens=1, top_p=0.7)  # 0.5 + 0.3 reach 0.7; the rest is cut
    seen_k = {choose_tokens(logits, [top_k], [generator])[0].token_id for _ in range(300)}
    seen_p = {choose_tokens(logits, [top_p], [generator])[0].token_id for _ in range(300)}
    assert seen_k == {0, 1} and seen_p == {0, 1}


def test_logprobs_are_the_models_before_temperature():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    params = SamplingParams(max_tokens=1, temperature=0.5, top_k=2, seed=3, logprobs=2)
    [choice] = _choose(logits, [params])
    expected = torch.log_softmax(logits[0], dim=-1)
    assert math.isclose(choice.logprob, float(expected[choice.token_id]), rel_tol=1e-6)
    assert [token for token, _ in choice.top_logprobs] == [0, 1]
    assert math.isclose(choice.top_logprobs[0][1], float(expected[0]), rel_tol=1e-6)
    [plain] = _choose(logits, [SamplingParams(max_tokens=1, temperature=0)])
    assert plain.logprob is None and plain.top_logprobs == []


def test_every_documented_temperature_is_numerically_safe():
    logits = torch.randn(1, 64, generator=torch.Generator().manual_seed(2)) * 30
    for temperature in (5e-324, 1e-300, 1e-45, 1e-39, 1e-30, 1e-7, 0.01, 2.0):
        params = SamplingParams(max_tokens=1, temperature=temperature, top_p=0.9, seed=5)
        [choice] = _choose(logits, [params])
        assert 0 <= choice.token_id < 64
        if temperature < 1e-6:  # all mass on the best token
            assert choice.token_id == int(logits.argmax())


def test_a_row_with_non_finite_logits_fails_alone():
    logits = torch.randn(3, 32, generator=torch.Generator().manual_seed(3))
    logits[1, 5] = float("nan")
    params = [SamplingParams(max_tokens=1, temperature=t, seed=1, logprobs=1) for t in (0, 1, 1)]
    first, broken, last = _choose(logits, params)
    assert isinstance(broken, SamplingError)
    assert first.token_id == int(logits[0].argmax()) and 0 <= last.token_id < 32
    assert first.logprob is not None and last.logprob is not None


def test_seeds_of_any_size_make_generators_and_reproduce():
    for seed in (0, -1, 2**63 - 1, 2**64 + 7):
        a, b = make_generator(seed, CPU), make_generator(seed, CPU)
        assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))
    different = torch.rand(4, generator=make_generator(-1, CPU))
    assert not torch.equal(different, torch.rand(4, generator=make_generator(1, CPU)))
