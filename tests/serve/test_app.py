"""The endpoints through a real uvicorn server and the real ``openai`` client:
greedy output equals ``model.generate()``, stop strings, usage, chat, streaming,
sampling seeds, logprobs, and 32 concurrent requests."""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request

import openai
import pytest
import torch

from forgather.serve import ServerThread, wrap_model
from tests.serve.conftest import MODEL_NAME, greedy_reference, wait_until

PROMPTS = [
    "def foo(x):",
    "import os\nimport sys\n",
    "class Template:\n    def __init__(self, template):\n        self.template = template\n",
    "x",
]


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text)["input_ids"]


def _get(server, path: str) -> dict:
    with urllib.request.urlopen(server.url + path) as response:
        return json.load(response)


def test_models_and_health(client, server):
    [model] = client.models.list().data
    assert model.id == MODEL_NAME
    assert model.max_model_len == 4096
    health = _get(server, "/health")
    assert health["status"] == "ok" and health["model"] == MODEL_NAME
    assert _get(server, f"/v1/models/{MODEL_NAME}")["id"] == MODEL_NAME


@pytest.mark.parametrize("prompt", PROMPTS)
def test_greedy_completion_equals_generate(client, model_and_tokenizer, prompt):
    model, tokenizer = model_and_tokenizer
    expected, new_tokens = greedy_reference(model, tokenizer, _ids(tokenizer, prompt), 24)
    response = client.completions.create(
        model=MODEL_NAME, prompt=prompt, max_tokens=24, temperature=0
    )
    [choice] = response.choices
    assert choice.text == expected
    assert choice.finish_reason == ("length" if new_tokens == 24 else "stop")
    assert response.usage.prompt_tokens == len(_ids(tokenizer, prompt))
    assert response.usage.completion_tokens == new_tokens
    assert response.usage.total_tokens == response.usage.prompt_tokens + new_tokens


def test_default_max_tokens(client, model_and_tokenizer):
    response = client.completions.create(
        model=MODEL_NAME, prompt="def", temperature=0, extra_body={"ignore_eos": True}
    )
    assert response.usage.completion_tokens == 16  # OpenAI's default for completions
    assert response.choices[0].finish_reason == "length"
    # Chat defaults to the rest of the context: 64 tokens in this server.
    model, tokenizer = model_and_tokenizer
    with ServerThread(wrap_model(model, tokenizer, MODEL_NAME, context=64)) as small:
        chat = openai.OpenAI(base_url=small.url + "/v1", api_key="-", max_retries=0)
        reply = chat.chat.completions.create(
            model=MODEL_NAME, messages=[{"role": "user", "content": "hi"}], temperature=0
        )
    assert reply.usage.total_tokens == 64 and reply.choices[0].finish_reason == "length"


def test_stream_equals_whole_response_with_usage(client):
    kwargs = {"model": MODEL_NAME, "prompt": PROMPTS[2], "max_tokens": 30, "temperature": 0}
    whole = client.completions.create(**kwargs)
    chunks = list(
        client.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    )
    *text_chunks, usage_chunk = chunks
    assert "".join(c.choices[0].text for c in text_chunks) == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in text_chunks][-1] == whole.choices[0].finish_reason
    assert all(c.choices[0].finish_reason is None for c in text_chunks[:-1])
    assert all(c.usage is None for c in text_chunks)
    assert usage_chunk.choices == [] and usage_chunk.usage == whole.usage


def test_stream_ends_with_done(server):
    body = {"prompt": "def", "max_tokens": 5, "temperature": 0, "stream": True}
    request = urllib.request.Request(
        server.url + "/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = [line for line in response.read().decode().split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-1])


def _cut_at(text: str, stops: list[str]) -> str:
    return text[: min(text.find(s) for s in stops if s in text)]


def test_stop_strings_cut_exactly(client, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompt = PROMPTS[1]
    full, _ = greedy_reference(model, tokenizer, _ids(tokenizer, prompt), 40)
    assert len(full) > 12, "the reference continuation is too short to place stop strings in"
    # A stop string spanning several tokens in the middle, and one that never occurs.
    stops = [full[6:11], "\u2603never"]
    kwargs = {"model": MODEL_NAME, "prompt": prompt, "max_tokens": 40, "temperature": 0}
    whole = client.completions.create(**kwargs, stop=stops)
    assert whole.choices[0].text == _cut_at(full, stops)
    assert whole.choices[0].finish_reason == "stop"
    streamed = client.completions.create(**kwargs, stop=stops, stream=True)
    pieces = [c.choices[0].text for c in streamed]
    assert "".join(pieces) == _cut_at(full, stops)
    single = client.completions.create(**kwargs, stop=full[3])  # a string, not a list
    assert single.choices[0].text == full[: full.find(full[3])]


def test_chat_uses_the_chat_template(client, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Say something."},
    ]
    templated = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert templated.endswith("<|assistant|>")
    prompt_ids = tokenizer(templated, add_special_tokens=False)["input_ids"]
    expected, new_tokens = greedy_reference(model, tokenizer, prompt_ids, 20)
    response = client.chat.completions.create(
        model=MODEL_NAME, messages=messages, max_tokens=20, temperature=0
    )
    assert response.object == "chat.completion"
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content == expected
    assert response.usage.prompt_tokens == len(prompt_ids)
    assert response.usage.completion_tokens == new_tokens


def test_async_streaming_chat_equals_whole(async_client):
    asyncio.run(_async_streaming_chat(async_client))


async def _async_streaming_chat(async_client):
    messages = [{"role": "user", "content": "import"}]
    kwargs = {"model": MODEL_NAME, "messages": messages, "max_tokens": 20, "temperature": 0}
    whole = await async_client.chat.completions.create(**kwargs)
    stream = await async_client.chat.completions.create(
        **kwargs, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == whole.choices[0].message.content
    assert chunks[-1].usage == whole.usage
    await async_client.close()


def test_sampling_seed_reproduces_and_n_counts(client):
    kwargs = {"model": MODEL_NAME, "prompt": "def", "max_tokens": 12, "temperature": 1.0}
    first = client.completions.create(**kwargs, seed=7, n=3)
    again = client.completions.create(**kwargs, seed=7, n=3)
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    assert [c.index for c in first.choices] == [0, 1, 2]
    # Three choices of 12 sampled tokens each from a spread-out distribution differ.
    assert len({c.text for c in first.choices}) > 1
    generated = first.usage.completion_tokens
    assert 3 <= generated <= 36 and first.usage.prompt_tokens == 1


def test_top_k_one_is_greedy(client):
    kwargs = {"model": MODEL_NAME, "prompt": PROMPTS[0], "max_tokens": 16}
    greedy = client.completions.create(**kwargs, temperature=0).choices[0].text
    top1 = client.completions.create(**kwargs, temperature=1.5, extra_body={"top_k": 1})
    tiny_p = client.completions.create(**kwargs, temperature=1.0, top_p=1e-6)
    assert top1.choices[0].text == greedy == tiny_p.choices[0].text


def test_completion_logprobs_are_the_models(client, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompt_ids = _ids(tokenizer, PROMPTS[0])
    response = client.completions.create(
        model=MODEL_NAME, prompt=PROMPTS[0], max_tokens=4, temperature=0, logprobs=3
    )
    logprobs = response.choices[0].logprobs
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids])).logits[0, -1]
    first = torch.log_softmax(logits.float(), dim=-1)
    assert math.isclose(logprobs.token_logprobs[0], float(first.max()), abs_tol=1e-4)
    assert len(logprobs.tokens) == response.usage.completion_tokens
    for chosen, top in zip(logprobs.token_logprobs, logprobs.top_logprobs, strict=True):
        assert len(top) == 3 and math.isclose(max(top.values()), chosen, abs_tol=1e-5)
    assert logprobs.text_offset[0] == 0


def test_chat_logprobs(client):
    response = client.chat.completions.create(
        model=MODEL_NAME,
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=3,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
    )
    content = response.choices[0].logprobs.content
    assert len(content) in (1, 2, 3)
    assert all(len(entry.top_logprobs) == 2 and entry.logprob <= 0 for entry in content)


def test_32_concurrent_requests_equal_their_sequential_results(async_client, server):
    asyncio.run(_concurrent_requests(async_client))
    wait_until(lambda: server.served.scheduler.stats()["running"] == 0)


async def _concurrent_requests(async_client):
    # Different prompt lengths and completion lengths, so rows join and leave at many steps.
    base = "def function(argument):\n    return argument + 1\n"
    jobs = [(base[: 3 + 5 * i], 4 + (7 * i) % 29, i % 3 == 0) for i in range(32)]

    async def run(prompt: str, max_tokens: int, stream: bool) -> str:
        kwargs = {"model": MODEL_NAME, "prompt": prompt, "max_tokens": max_tokens}
        if not stream:
            response = await async_client.completions.create(**kwargs, temperature=0)
            return response.choices[0].text
        chunks = await async_client.completions.create(**kwargs, temperature=0, stream=True)
        return "".join([chunk.choices[0].text async for chunk in chunks])

    sequential = [await run(*job) for job in jobs]
    concurrent = await asyncio.gather(*(run(*job) for job in jobs))
    assert concurrent == sequential
    await async_client.close()


def test_prompt_lists_token_ids_and_ignore_eos(client, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    ids = _ids(tokenizer, "x")
    expected, new_tokens = greedy_reference(model, tokenizer, ids, 10)
    assert new_tokens < 10, "the fixture model should stop early after 'x'"
    response = client.completions.create(
        model=MODEL_NAME, prompt=["x", "def"], max_tokens=10, temperature=0, n=2
    )
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    assert response.choices[0].text == response.choices[1].text == expected
    assert response.usage.prompt_tokens == len(ids) + len(_ids(tokenizer, "def"))
    by_ids = client.completions.create(model=MODEL_NAME, prompt=ids, max_tokens=10, temperature=0)
    assert by_ids.choices[0].text == expected
    forced = client.completions.create(
        model=MODEL_NAME, prompt="x", max_tokens=10, temperature=0, extra_body={"ignore_eos": True}
    )
    assert forced.usage.completion_tokens == 10 and forced.choices[0].finish_reason == "length"
    assert forced.choices[0].text.startswith(expected)
