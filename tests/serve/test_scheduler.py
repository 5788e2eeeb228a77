"""The batch scheduler without HTTP: rows joining and leaving a left-padded KV batch
decode exactly like ``generate()``; the batch size and token budget bound the batch;
cancelled and failing sequences leave it."""

from __future__ import annotations

import threading

import pytest
import torch
from transformers import DynamicCache

from forgather.serve.kv_batch import PaddedKVBatch, cache_keyword
from forgather.serve.sampling import SamplingParams
from forgather.serve.scheduler import BatchScheduler, GenerationRequest, Overloaded
from tests.serve.conftest import greedy_reference, wait_until

TEXT = "def function(argument):\n    return argument + 1\n\nclass A:\n    pass\n"


@pytest.fixture
def scheduler(model_and_tokenizer):
    def make(**limits) -> BatchScheduler:
        model, tokenizer = model_and_tokenizer
        made = BatchScheduler(model, tokenizer, **limits)
        made.start()
        started.append(made)
        return made

    started: list[BatchScheduler] = []
    yield make
    for made in started:
        made.stop()


def _greedy(tokenizer, max_tokens: int, stop=()) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens, temperature=0, stop=stop, stop_token_ids=(tokenizer.eos_token_id,)
    )


@pytest.mark.parametrize("limits", [{"max_batch_size": 3}, {"max_batch_tokens": 40}])
def test_batched_greedy_equals_generate(scheduler, model_and_tokenizer, limits):
    model, tokenizer = model_and_tokenizer
    prompts = [tokenizer(TEXT[: 2 + 7 * i])["input_ids"] for i in range(7)]
    running = scheduler(**limits)
    results = running.generate(prompts, _greedy(tokenizer, 20))
    for prompt, (text, finish_reason, generated) in zip(prompts, results, strict=True):
        expected, new_tokens = greedy_reference(model, tokenizer, prompt, 20)
        assert (text, generated) == (expected, new_tokens)
        assert finish_reason == ("length" if new_tokens == 20 else "stop")


def test_batch_size_and_token_budget_bound_the_batch(scheduler, model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    running = scheduler(max_batch_size=4, max_batch_tokens=50)
    seen: list[int] = []
    prompts = [tokenizer(TEXT[: 4 + i])["input_ids"] for i in range(10)]  # ~3-8 tokens each
    done = threading.Semaphore(0)

    def on_output(output) -> None:
        seen.append(running.stats()["running"])
        if output.finish_reason:
            done.release()

    # Each reserves its prompt + 12 tokens, so at most 3 fit the budget of 50.
    running.submit([GenerationRequest(p, _greedy(tokenizer, 12), on_output) for p in prompts])
    for _ in prompts:
        done.acquire()
    assert 2 <= max(seen) <= 3


def test_cancelled_sequences_stop_and_others_finish(scheduler, model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    running = scheduler(max_batch_size=2)
    outputs: dict[int, list] = {0: [], 1: [], 2: []}
    first_token = threading.Event()
    finished = threading.Event()

    def collect(index):
        def on_output(output):
            outputs[index].append(output)
            first_token.set()
            if index == 2 and output.finish_reason:
                finished.set()

        return on_output

    params = SamplingParams(max_tokens=3000, temperature=0)  # no stop tokens: runs for seconds
    ids = running.submit(
        [GenerationRequest([5, 6, 7], params, collect(i)) for i in range(2)]
        + [GenerationRequest([5, 6], _greedy(tokenizer, 5), collect(2))]
    )
    first_token.wait()
    running.cancel(ids[:2])  # one running, then the one that took the other row
    finished.wait()
    assert outputs[2][-1].num_generated <= 5
    assert all(not out.finish_reason for i in (0, 1) for out in outputs[i])
    wait_until(lambda: running.stats()["running"] == 0)
    stats = running.stats()
    assert stats["running"] == stats["waiting"] == 0 and stats["cancelled"] == 2


def test_queue_limit_and_failing_callback(scheduler, model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    running = scheduler(max_batch_size=1, max_waiting=2)
    requests = [GenerationRequest([5], _greedy(tokenizer, 2), lambda out: None)] * 3
    with pytest.raises(Overloaded):
        running.submit(requests)  # all or none: three do not fit a queue of two

    def broken(output):
        raise RuntimeError("receiver gone")

    running.submit([GenerationRequest([5, 6], SamplingParams(max_tokens=3000), broken)])
    [(text, reason, _)] = running.generate([[7, 8]], _greedy(tokenizer, 4))
    assert reason in ("length", "stop")
    assert running.stats()["cancelled"] == 1


def test_an_error_escaping_the_batch_loop_fails_the_requests_and_the_loop_goes_on(
    scheduler, model_and_tokenizer
):
    _, tokenizer = model_and_tokenizer
    running = scheduler()
    running.max_batch_size = "lots"  # what a config file once passed unchecked
    [(_, reason, _)] = running.generate([[5, 6]], _greedy(tokenizer, 3))  # would hang
    assert reason == "error" and running.stats()["failed"] == 1
    running.max_batch_size = 4
    [(_, reason, generated)] = running.generate([[5, 6]], _greedy(tokenizer, 3))
    assert (reason, generated) == ("length", 3)


def _own_cache(model, tokens: list[int]) -> DynamicCache:
    cache = DynamicCache(config=model.config)
    model(torch.tensor([tokens]), use_cache=True, **{cache_keyword(model): cache})
    return cache


def test_padded_batch_trims_columns_no_row_uses(model_and_tokenizer):
    model, _ = model_and_tokenizer
    batch = PaddedKVBatch(model.config)
    for length in (3, 7, 5):
        batch.add(_own_cache(model, list(range(10, 10 + length))), length)
    assert batch.mask.sum(dim=1).tolist() == [3, 7, 5] and batch.mask.shape[1] == 7
    batch.keep([2, 0])
    assert batch.lengths == [5, 3] and batch.mask.shape == (2, 5)
    assert batch.cache.layers[0].keys.shape[2] == 5
    batch.keep([])
    assert len(batch) == 0 and batch.mask is None


def test_padded_batch_rows_hold_their_own_keys_through_joins_and_leaves(model_and_tokenizer):
    """Whatever rows joined (alone or left-padded together), left or grew, each row holds
    exactly the keys and values of its own tokens, zeros before them, and a mask to match."""
    model, _ = model_and_tokenizer
    batch = PaddedKVBatch(model.config)
    tokens: list[list[int]] = []  # per batch row

    def join(prompts: list[list[int]]) -> None:
        width = max(map(len, prompts))
        cache = DynamicCache(config=model.config)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        model(
            torch.tensor([[0] * (width - len(p)) + p for p in prompts]),
            attention_mask=mask,
            position_ids=(mask.cumsum(dim=1) - 1).clamp(min=0),
            use_cache=True,
            **{cache_keyword(model): cache},
        )
        batch.add_rows(cache, [len(p) for p in prompts])
        tokens.extend(prompts)

    def step() -> None:
        inputs = batch.step_inputs([row[-1] for row in tokens])
        model(**inputs, **{cache_keyword(model): batch.cache})
        for row in tokens:
            row.append(row[-1])

    def check() -> None:
        assert batch.lengths == [len(row) for row in tokens]
        width = batch.mask.shape[1]
        for b, row in enumerate(tokens):
            assert batch.mask[b].tolist() == [0] * (width - len(row)) + [1] * len(row)
            for own, shared in zip(_own_cache(model, row).layers, batch.cache.layers, strict=True):
                torch.testing.assert_close(shared.keys[b, :, width - len(row) :], own.keys[0])
                torch.testing.assert_close(shared.values[b, :, width - len(row) :], own.values[0])
                assert not shared.keys[b, :, : width - len(row)].any()

    join([[11, 12, 13]])
    join([[20 + i for i in range(9)], [30, 31]])  # longer than the batch: it moves right
    step()
    check()
    order = batch.drop([0])  # the last row takes its place
    tokens = [tokens[row] for row in order]
    assert order == [2, 1] and batch.mask.shape[1] == 10  # the 9-token row still needs all
    join([[40, 41, 42, 43 + i] for i in range(3)])  # more rows than allocated
    for _ in range(70):  # past the first column capacity
        step()
    check()
    order = batch.drop([1, 3])
    tokens = [tokens[row] for row in order]
    step()
    check()


def test_a_model_returning_bare_logits_is_served_like_generate(model_and_tokenizer):
    """The original Forgather's generated models return a logits tensor unless given
    ``return_dict=True``; the scheduler asks for the dict (and reads a bare tensor too)."""
    model, tokenizer = model_and_tokenizer

    class BareLogits(type(model)):
        def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None,
                    use_cache=None, logits_to_keep=0, return_dict=None, **kwargs):  # fmt: skip
            output = super().forward(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                cache=cache, use_cache=use_cache, logits_to_keep=logits_to_keep, **kwargs,
            )  # fmt: skip
            return output if return_dict else output.logits

    bare = BareLogits(model.config).eval()
    bare.load_state_dict(model.state_dict())
    prompts = [tokenizer(TEXT[: 5 + 9 * i])["input_ids"] for i in range(3)]
    for use_cache in (True, False):
        running = BatchScheduler(bare, tokenizer, use_cache=use_cache)
        running.start()
        try:
            results = running.generate(prompts, _greedy(tokenizer, 8))
        finally:
            running.stop()
        for prompt, (text, _, generated) in zip(prompts, results, strict=True):
            assert (text, generated) == greedy_reference(model, tokenizer, prompt, 8)
