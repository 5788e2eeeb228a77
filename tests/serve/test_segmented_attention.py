"""Decode attention per group of similar-length rows, and the grouping of prompts and rows:
the groups are optimal for their cost model, a segmented decode step gives each row
the logits of decoding it alone, and the scheduler with rows of very different lengths
joining, sorting and leaving still gives ``generate()``'s greedy tokens."""

from __future__ import annotations

import itertools
import random

import torch
from transformers import DynamicCache
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from forgather.serve import segmented_attention
from forgather.serve.kv_batch import PaddedKVBatch, cache_keyword, groups_cost, row_groups
from forgather.serve.sampling import SamplingParams
from forgather.serve.scheduler import BatchScheduler, GenerationRequest, prefill_groups
from tests.serve.conftest import greedy_reference, wait_until


def _partitions(count: int):
    """Every split of range(count) into consecutive runs."""
    for cuts in itertools.product([False, True], repeat=count - 1):
        runs, first = [], 0
        for i, cut in enumerate(cuts, start=1):
            if cut:
                runs.append((first, i))
                first = i
        yield runs + [(first, count)]


def test_row_and_prefill_groups_are_the_cheapest_splits():
    rng = random.Random(0)
    for _ in range(40):
        lengths = [
            rng.choice([1, 5, 40, 300, rng.randrange(1, 400)]) for _ in range(rng.randrange(1, 9))
        ]
        runs = row_groups(lengths, group_cost=64)
        best = min(groups_cost(lengths, p, 64) for p in _partitions(len(lengths)))
        assert groups_cost(lengths, runs, 64) == best
        ordered = sorted(lengths)

        def prefill_cost(runs, ordered=ordered):
            return sum(20 + (end - first) * ordered[end - 1] for first, end in runs)

        def allowed(runs, ordered=ordered):
            return all(
                end - first == 1 or (end - first) * ordered[end - 1] <= 600 for first, end in runs
            )

        runs = prefill_groups(ordered, 600, group_cost=20)
        assert allowed(runs)
        assert prefill_cost(runs) == min(
            prefill_cost(p) for p in _partitions(len(ordered)) if allowed(p)
        )


def _own_cache(model, tokens: list[int]) -> DynamicCache:
    cache = DynamicCache(config=model.config)
    model(torch.tensor([tokens]), use_cache=True, **{cache_keyword(model): cache})
    return cache


def test_segmented_step_gives_each_row_its_own_logits(model_and_tokenizer):
    model, _ = model_and_tokenizer
    assert (
        model.config._attn_implementation == segmented_attention.NAME
        or segmented_attention.enable(model)
    )
    prompts = [
        [7 + (i * j) % 50 for j in range(length)] for i, length in enumerate((3, 300, 4, 310, 5, 6))
    ]
    batch = PaddedKVBatch(model.config)
    for prompt in prompts:
        batch.add(_own_cache(model, prompt), len(prompt))
    order = batch.sort_rows()
    assert order is not None and [len(prompts[row]) for row in order] == [310, 300, 6, 5, 4, 3]
    prompts = [prompts[row] for row in order]
    inputs = batch.step_inputs([prompt[-1] for prompt in prompts])
    segments = batch.segments()
    assert len(segments) == 2 and segments[1][:2] == (2, 6)
    with torch.inference_mode(), segmented_attention.decode_segments(segments):
        logits = model(**inputs, **{cache_keyword(model): batch.cache}).logits[:, -1]
    with torch.inference_mode():
        for row, prompt in enumerate(prompts):
            alone = model(torch.tensor([prompt + [prompt[-1]]])).logits[0, -1]
            torch.testing.assert_close(logits[row], alone, atol=1e-4, rtol=1e-4)


def test_scheduler_with_rows_of_very_different_lengths_equals_generate(model_and_tokenizer):
    """Long and short prompts join in waves and leave at different steps; the rows are
    sorted and decoded in groups (counted), and every output is generate()'s."""
    model, tokenizer = model_and_tokenizer
    text = "def function(argument):\n    return argument + 1\n\nclass A:\n    pass\n" * 12
    ids = tokenizer(text)["input_ids"]
    lengths = [3, 250, 5, 180, 2, 220, 8, 4, 200, 6]
    prompts = [ids[i : i + length] for i, length in enumerate(lengths)]
    max_tokens = [6 + (5 * i) % 17 for i in range(len(prompts))]
    grouped_calls = []

    def counting(module, query, key, value, mask, **kwargs):
        segments = getattr(segmented_attention._state, "segments", None) or []
        grouped_calls.append(len(segments) >= 2 and query.shape[2] == 1)
        return segmented_attention.segmented_sdpa_forward(module, query, key, value, mask, **kwargs)

    ALL_ATTENTION_FUNCTIONS.register(segmented_attention.NAME, counting)
    scheduler = BatchScheduler(model, tokenizer, max_batch_size=4)
    scheduler.start()
    try:
        results: dict[int, list] = {i: ["", None] for i in range(len(prompts))}
        finished = []

        def collect(index):
            def on_output(output):
                results[index][0] += output.text
                if output.finish_reason:
                    results[index][1] = output.num_generated
                    finished.append(index)

            return on_output

        requests = [
            GenerationRequest(
                prompt,
                SamplingParams(
                    max_tokens=count, temperature=0, stop_token_ids=(tokenizer.eos_token_id,)
                ),
                collect(i),
            )
            for i, (prompt, count) in enumerate(zip(prompts, max_tokens, strict=True))
        ]
        scheduler.submit(requests)
        wait_until(lambda: len(finished) == len(prompts))
    finally:
        scheduler.stop()
        ALL_ATTENTION_FUNCTIONS.register(
            segmented_attention.NAME, segmented_attention.segmented_sdpa_forward
        )
    assert any(grouped_calls)
    for i, prompt in enumerate(prompts):
        expected, new_tokens = greedy_reference(model, tokenizer, prompt, max_tokens[i])
        assert results[i] == [expected, new_tokens], i
