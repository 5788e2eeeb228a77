"""Fixtures for the serving tests: a tiny real model directory, a real uvicorn
server on 127.0.0.1 serving it, and ``openai`` clients pointed at it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import openai
import pytest
import torch

from forgather.serve import ServerThread, load_for_serving, wrap_model
from tests.serve.tiny_model import build_tiny_llama

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MODEL_NAME = "tiny"
MAX_BATCH_SIZE = 8  # below the 32 concurrent requests of the tests, so some must wait


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread():
    """A 64-wide model is faster on one thread, and cores are shared with other tests."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> str:
    return build_tiny_llama(str(tmp_path_factory.mktemp("models") / MODEL_NAME))


@pytest.fixture(scope="session")
def model_and_tokenizer(model_dir):
    return load_for_serving(model_dir)


@pytest.fixture(scope="session")
def server(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    served = wrap_model(model, tokenizer, MODEL_NAME, max_batch_size=MAX_BATCH_SIZE)
    with ServerThread(served) as running:
        yield running


@pytest.fixture
def client(server) -> openai.OpenAI:
    # No retries: a 503 must reach the test, not be retried away.
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def async_client(server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def greedy_reference(model, tokenizer, prompt_ids: list[int], max_new_tokens: int):
    """``model.generate()``'s greedy continuation: (text, number of new tokens).

    It stops at the tokenizer's end-of-sequence token, as the server does, even
    for a model whose generation config names none (a generated model built
    without a tokenizer).
    """
    with torch.no_grad():
        output = model.generate(
            torch.tensor([prompt_ids]),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    new_tokens = output[0, len(prompt_ids) :]
    return tokenizer.decode(new_tokens, skip_special_tokens=True), len(new_tokens)


def uncached_greedy(model, tokenizer, prompt_ids: list[int], max_new_tokens: int):
    """Greedy continuation that recomputes the whole sequence each step: (text, new tokens).

    A reference with no KV-cache path at all, for checking the cached ones.
    """
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        for _ in range(max_new_tokens):
            next_id = model(input_ids=ids, use_cache=False).logits[:, -1].argmax(-1)
            ids = torch.cat([ids, next_id[:, None]], dim=1)
            if next_id.item() == tokenizer.eos_token_id:
                break
    new_tokens = ids[0, len(prompt_ids) :]
    return tokenizer.decode(new_tokens, skip_special_tokens=True), len(new_tokens)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds (a hang, not a timing)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)
