"""Every bad request gets its status and an OpenAI-style body, and the server keeps
serving: a valid request right after each one succeeds. Also: overload (503) and
clients that disconnect, and bodies sent without a JSON Content-Type (read as JSON)."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request

import openai
import pytest

from forgather.serve import ServerThread, wrap_model
from tests.serve.conftest import MODEL_NAME, wait_until

COMPLETIONS, CHAT = "/v1/completions", "/v1/chat/completions"


def _post(url: str, body: bytes | dict, method: str = "POST") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def _assert_still_serving(server) -> None:
    status, body = _post(server.url + COMPLETIONS, {"prompt": "def", "max_tokens": 3})
    assert status == 200 and body["choices"][0]["finish_reason"] in ("length", "stop")


LONG_PROMPT = [5] * 4100  # token ids; the context is 4096
USER = [{"role": "user", "content": "hi"}]

# (path, body, status, param, code)
BAD_REQUESTS = {
    "malformed json": (COMPLETIONS, b'{"prompt": "x",', 400, None, "invalid_json"),
    "not an object": (COMPLETIONS, b"[1, 2]", 400, None, None),
    "missing prompt": (COMPLETIONS, {"max_tokens": 3}, 400, "prompt", None),
    "temperature too high": (
        COMPLETIONS,
        {"prompt": "x", "temperature": 3},
        400,
        "temperature",
        None,
    ),
    "top_p zero": (COMPLETIONS, {"prompt": "x", "top_p": 0}, 400, "top_p", None),
    "n zero": (COMPLETIONS, {"prompt": "x", "n": 0}, 400, "n", None),
    "max_tokens zero": (COMPLETIONS, {"prompt": "x", "max_tokens": 0}, 400, "max_tokens", None),
    "max_tokens a word": (
        COMPLETIONS,
        {"prompt": "x", "max_tokens": "many"},
        400,
        "max_tokens",
        None,
    ),
    "logprobs too many": (COMPLETIONS, {"prompt": "x", "logprobs": 9}, 400, "logprobs", None),
    "empty prompt": (COMPLETIONS, {"prompt": ""}, 400, "prompt", None),
    "token id out of range": (COMPLETIONS, {"prompt": [1, 10**6]}, 400, "prompt", None),
    "penalty": (
        COMPLETIONS,
        {"prompt": "x", "presence_penalty": 1.0},
        400,
        "presence_penalty",
        None,
    ),
    "echo with logprobs": (
        COMPLETIONS,
        {"prompt": "x", "echo": True, "logprobs": 1},
        400,
        "echo",
        None,
    ),
    "beam search": (COMPLETIONS, {"prompt": "x", "num_beams": 4}, 400, "num_beams", None),
    # Strict types: a string is not a boolean, nor a boolean a count (pydantic's lax mode took both).
    "stream as a string": (COMPLETIONS, {"prompt": "x", "stream": "yes"}, 400, "stream", None),
    "max_tokens as a boolean": (
        COMPLETIONS,
        {"prompt": "x", "max_tokens": True},
        400,
        "max_tokens",
        None,
    ),
    "n as a string": (CHAT, {"messages": USER, "n": "2"}, 400, "n", None),
    "too many stops": (COMPLETIONS, {"prompt": "x", "stop": ["a"] * 17}, 400, "stop", None),
    "prompt longer than context": (
        COMPLETIONS,
        {"prompt": LONG_PROMPT},
        400,
        "prompt",
        "context_length_exceeded",
    ),
    "prompt + max_tokens over context": (
        COMPLETIONS,
        {"prompt": "x", "max_tokens": 5000},
        400,
        "max_tokens",
        "context_length_exceeded",
    ),
    "unknown model": (
        COMPLETIONS,
        {"model": "gpt-9", "prompt": "x"},
        404,
        "model",
        "model_not_found",
    ),
    "chat unknown model": (
        CHAT,
        {"model": "gpt-9", "messages": USER},
        404,
        "model",
        "model_not_found",
    ),
    "chat no messages": (CHAT, {"messages": []}, 400, "messages", None),
    "chat bad message": (
        CHAT,
        {"messages": [{"content": "no role"}]},
        400,
        "messages.0.role",
        None,
    ),
    "chat tools": (CHAT, {"messages": USER, "tools": [{"type": "function"}]}, 400, "tools", None),
    "chat top_logprobs alone": (
        CHAT,
        {"messages": USER, "top_logprobs": 2},
        400,
        "top_logprobs",
        None,
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_openai_error_then_server_still_serves(server, case):
    path, body, status, param, code = BAD_REQUESTS[case]
    got_status, got = _post(server.url + path, body)
    assert got_status == status, got
    assert set(got) == {"error"}
    error = got["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert error["param"] == param and error["code"] == code
    _assert_still_serving(server)


def test_unknown_route_and_wrong_method(server):
    status, body = _post(server.url + "/v1/nothing", {})
    assert status == 404 and body["error"]["type"] == "not_found_error"
    status, body = _post(server.url + "/v1/completions", b"", method="PUT")
    assert status == 405 and "message" in body["error"]
    _assert_still_serving(server)


def test_chat_without_template_is_400(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    template, tokenizer.chat_template = tokenizer.chat_template, None
    try:
        with ServerThread(wrap_model(model, tokenizer, MODEL_NAME)) as server:
            status, body = _post(server.url + CHAT, {"messages": USER})
            assert status == 400 and "chat template" in body["error"]["message"]
            _assert_still_serving(server)
    finally:
        tokenizer.chat_template = template


def test_openai_client_raises_typed_errors(client):
    with pytest.raises(openai.NotFoundError) as not_found:
        client.completions.create(model="gpt-9", prompt="x")
    assert not_found.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=MODEL_NAME, messages=USER, temperature=-1)
    assert bad.value.body["param"] == "temperature"


def _open_stream(server, max_tokens: int) -> tuple[http.client.HTTPConnection, object]:
    """Start a streaming completion and read its first chunk (so it is running)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    body = {"prompt": "def", "max_tokens": max_tokens, "ignore_eos": True, "stream": True}
    connection.request("POST", COMPLETIONS, json.dumps(body), {"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: {")
    return connection, response


def test_overloaded_server_answers_503(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    served = wrap_model(model, tokenizer, MODEL_NAME, max_batch_size=1, max_waiting=1)
    scheduler = served.scheduler
    with ServerThread(served) as server:
        # One long request runs (it would take seconds), one waits, the third is refused.
        connection, _ = _open_stream(server, max_tokens=4000)
        waiting = threading.Thread(
            target=_post, args=(server.url + COMPLETIONS, {"prompt": "x", "max_tokens": 2})
        )
        waiting.start()
        wait_until(lambda: scheduler.stats()["waiting"] == 1)
        status, body = _post(server.url + COMPLETIONS, {"prompt": "x", "max_tokens": 2})
        assert status == 503
        assert body["error"]["code"] == "overloaded" and body["error"]["type"] == "server_error"
        connection.close()  # the long request is dropped, so the waiting one runs
        waiting.join()
        _assert_still_serving(server)
        assert scheduler.stats()["cancelled"] == 1


def test_disconnected_stream_is_dropped_from_the_batch(server):
    scheduler = server.served.scheduler
    before = scheduler.stats()
    connection, _ = _open_stream(server, max_tokens=4000)
    connection.close()
    wait_until(lambda: scheduler.stats()["cancelled"] == before["cancelled"] + 1)
    after = scheduler.stats()
    assert after["running"] == 0
    assert after["generated_tokens"] - before["generated_tokens"] < 4000
    _assert_still_serving(server)


def test_disconnected_whole_request_is_dropped(server):
    scheduler = server.served.scheduler
    before = scheduler.stats()["cancelled"]
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    body = json.dumps({"prompt": "def", "max_tokens": 4000, "ignore_eos": True})
    connection.request("POST", COMPLETIONS, body, {"Content-Type": "application/json"})
    wait_until(lambda: scheduler.stats()["running"] == 1)
    connection.close()
    wait_until(lambda: scheduler.stats()["cancelled"] == before + 1)
    assert scheduler.stats()["running"] == 0
    _assert_still_serving(server)


def _post_raw(server, path: str, body: bytes, content_type: str | None,
              origin: str | None = None) -> tuple[int, dict]:  # fmt: skip
    """POST ``body`` with exactly this ``Content-Type`` (``None``: no such header)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        headers = {} if content_type is None else {"Content-Type": content_type}
        headers |= {} if origin is None else {"Origin": origin}
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# What clients send when they forget the header: curl -d sends the form type.
CONTENT_TYPES = [
    None,
    "application/x-www-form-urlencoded",
    "text/plain",
    "text/plain; charset=utf-8",
    "application/octet-stream",
]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize(
    "path, body",
    [
        (COMPLETIONS, {"prompt": "def", "max_tokens": 3, "temperature": 0}),
        (CHAT, {"messages": USER, "max_tokens": 3, "temperature": 0}),
    ],
)
def test_a_json_body_is_read_as_json_whatever_its_content_type(server, content_type, path, body):
    expected_status, expected = _post(server.url + path, body)
    assert expected_status == 200, expected
    status, got = _post_raw(server, path, json.dumps(body).encode(), content_type)
    assert status == 200, got
    assert got["choices"] == expected["choices"] and got["usage"] == expected["usage"]


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize(
    "body, status, param, code",
    [
        (b'{"prompt": "x",', 400, None, "invalid_json"),
        (b"prompt=def&max_tokens=3", 400, None, "invalid_json"),  # a real form is not JSON
        (b'{"prompt": "\xff\xfe"}', 400, None, "invalid_json"),
        (b"[1, 2]", 400, None, None),
        (b'{"prompt": "x", "temperature": 3}', 400, "temperature", None),
    ],
)
def test_bad_bodies_get_their_documented_error_whatever_their_content_type(
    server, content_type, body, status, param, code
):
    got_status, got = _post_raw(server, COMPLETIONS, body, content_type)
    assert got_status == status, got
    error = got["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == param and error["code"] == code
    _assert_still_serving(server)


@pytest.mark.parametrize("content_type", ["application/x-www-form-urlencoded", "text/plain", None])
def test_a_web_page_cannot_spend_the_server_with_a_body_it_sends_without_asking(
    server, content_type
):
    """A browser sends these to any origin without a CORS preflight (JSON only after one,
    which this server never answers): from a page (an Origin header) they are refused."""
    before = server.served.scheduler.stats()["generated_tokens"]
    body = json.dumps({"prompt": "def", "max_tokens": 3}).encode()
    status, got = _post_raw(server, COMPLETIONS, body, content_type, origin="http://evil.test")
    assert status == 415, got
    assert got["error"]["code"] == "unsupported_media_type"
    assert got["error"]["type"] == "invalid_request_error"
    assert server.served.scheduler.stats()["generated_tokens"] == before  # nothing generated
    status, got = _post_raw(
        server, COMPLETIONS, body, "application/json", origin="http://evil.test"
    )
    assert status == 200, got  # declared JSON: a browser asks first, so this came from a client
    _assert_still_serving(server)
