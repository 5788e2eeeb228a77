"""Requests at the edges of the documented ranges: none gets a 5xx, and none
disturbs the other requests in its batch.

Seen before these fixes: ``temperature`` 1e-39 gave NaN probabilities and a
500 (and, when it happened at a later decode step, failed every request in
the batch); ``seed`` >= 2**64, or ``seed + i`` overflowing with ``n > 1``,
gave a 500."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from tests.serve.conftest import greedy_reference

COMPLETIONS = "/v1/completions"


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


@pytest.mark.parametrize("temperature", [1e-39, 1e-30, 1e-8])
def test_tiny_temperatures_sample_the_best_token(server, model_and_tokenizer, temperature):
    model, tokenizer = model_and_tokenizer
    prompt = "def foo(x):"
    expected, _ = greedy_reference(model, tokenizer, tokenizer(prompt)["input_ids"], 8)
    body = {"prompt": prompt, "max_tokens": 8, "temperature": temperature, "top_p": 0.5, "seed": 1}
    status, response = _post(server.url + COMPLETIONS, body)
    assert status == 200, response
    assert response["choices"][0]["text"] == expected


@pytest.mark.parametrize("seed", [2**63 - 1, -(2**63), 0])
def test_seeds_at_the_ends_of_int64_work_with_several_choices(server, seed):
    body = {"prompt": "import", "max_tokens": 4, "n": 3, "seed": seed, "temperature": 1.0}
    status, response = _post(server.url + COMPLETIONS, body)
    assert status == 200, response
    assert len(response["choices"]) == 3
    again = _post(server.url + COMPLETIONS, body)[1]
    assert [c["text"] for c in again["choices"]] == [c["text"] for c in response["choices"]]


@pytest.mark.parametrize("seed", [2**63, 2**64, -(2**63) - 1, 10**30])
def test_seeds_outside_int64_are_a_400_naming_the_field(server, seed):
    status, response = _post(server.url + COMPLETIONS, {"prompt": "x", "seed": seed})
    assert status == 400
    assert response["error"]["param"] == "seed" and response["error"]["type"]


def test_tiny_temperature_rows_do_not_disturb_their_batch(server, model_and_tokenizer):
    """Greedy requests decoded beside tiny-temperature ones still equal generate()."""
    model, tokenizer = model_and_tokenizer
    prompts = ["class A:", "import os\n", "def f(", "x = ["]
    expected = [
        greedy_reference(model, tokenizer, tokenizer(p)["input_ids"], 12)[0] for p in prompts
    ]
    results: dict[int, tuple[int, dict]] = {}

    def ask(i: int) -> None:
        body = {"prompt": prompts[i % 4], "max_tokens": 12}
        body["temperature"] = 0 if i < 4 else 1e-39
        results[i] = _post(server.url + COMPLETIONS, body)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(status == 200 for status, _ in results.values()), results
    for i in range(8):
        assert results[i][1]["choices"][0]["text"] == expected[i % 4]
