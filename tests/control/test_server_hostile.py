"""Hostile bodies sent to a job's control endpoint: each gets a 400 (or 401/404),
nothing is queued but valid commands, nothing is printed, and the server keeps
answering. A deeply nested JSON body used to close the connection and print a
RecursionError traceback into the training job's stderr."""

from __future__ import annotations

import http.client
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forgather.control import COMMANDS
from forgather.control.server import FINAL_COMMANDS, ControlServer, parse_command

TOKEN = "secret-token"


@pytest.fixture(scope="module")
def server():
    running = ControlServer(TOKEN, lambda: {"step": 3}).start()
    yield running
    running.close()


def _send(server, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sent = {"Authorization": f"Bearer {TOKEN}", "Content-Length": str(len(body))}
        connection.request("POST", "/command", body=body, headers={**sent, **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def _still_answers(server) -> None:
    assert _send(server, b'{"command": "save"}') == (200, {"accepted": "save", "step": 3})
    assert server.pending() == ["save"]


HOSTILE = {
    "deep list": b"[" * 3000 + b"]" * 3000,
    "deep object": b'{"a":' * 1300 + b"1" + b"}" * 1300,
    "deep under command": b'{"command": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    "invalid utf-8": b'{"command": "\xff\xfe"}',
    "lone surrogate escape": b'{"command": "\\ud800"}',
    "number": b"12",
    "null": b"null",
    "command not a string": b'{"command": {"save": true}}',
    "over the size limit": b'{"command": "save", "pad": "' + b"x" * 5000 + b'"}',
    "NaN, which JSON lacks": b'{"command": "save", "x": NaN}',
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bodies_get_400_and_print_nothing(server, body, capfd):
    status, answer = _send(server, body)
    assert status == 400 and answer["error"]
    assert server.pending() == []
    _still_answers(server)
    out, err = capfd.readouterr()
    assert "Traceback" not in err + out and "Error" not in err


@pytest.mark.parametrize("length", ["-1", "many", "99999999", "0"])
def test_bad_content_lengths_get_400(server, length):
    status, answer = _send(server, b'{"command": "save"}', {"Content-Length": length})
    assert status == 400 and "bytes" in answer["error"]
    _still_answers(server)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.dictionaries(st.sampled_from(["command", "x"]), json_values, max_size=3).map(
            lambda v: json.dumps(v).encode()
        ),
    )
)
def test_fuzzed_bodies_queue_only_valid_commands(server, body):
    status, answer = _send(server, body)
    try:
        expected = parse_command(body)
    except ValueError:
        assert status == 400 and answer["error"]
        assert server.pending() == []
    else:
        assert (status, answer["accepted"]) == (200, expected)
        assert server.pending() == [expected]
        if expected in FINAL_COMMANDS:
            server.final = None  # a job would end here; this server serves the next example


def test_parse_command_accepts_exactly_the_commands():
    for command in COMMANDS:
        assert parse_command(json.dumps({"command": command}).encode()) == command
    with pytest.raises(ValueError, match="unknown command 'explode'"):
        parse_command(b'{"command": "explode"}')
    with pytest.raises(ValueError, match=r'unknown command \["save"\];'):  # the value, not "list"
        parse_command(b'{"command": ["save"]}')


def _raw(server, method: str, headers: dict) -> tuple[int, dict, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, "/command", headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()


def test_other_methods_get_a_json_405_and_the_bearer_scheme_is_case_insensitive(server):
    status, headers, answer = _raw(server, "DELETE", {"Authorization": f"Bearer {TOKEN}"})
    assert (status, headers["Allow"]) == (405, "GET, POST")
    assert answer == {"error": "method DELETE not allowed: GET or POST"}
    assert _send(server, b'{"command": "save"}', {"Authorization": f"bearer {TOKEN}"})[0] == 200
    assert server.pending() == ["save"]
    assert _send(server, b'{"command": "save"}', {"Authorization": f"Basic {TOKEN}"})[0] == 401


def test_commands_after_a_stop_are_refused_not_dropped():
    """The job ends at the step that applies a stop: a later save or abort would be
    accepted and never applied (an abort after a stop exited 0 with a checkpoint)."""
    running = ControlServer(TOKEN, lambda: {"step": 7}).start()
    try:
        assert _send(running, b'{"command": "save"}') == (200, {"accepted": "save", "step": 7})
        assert _send(running, b'{"command": "stop"}') == (200, {"accepted": "stop", "step": 7})
        for later in (b'{"command": "save"}', b'{"command": "abort"}'):
            assert _send(running, later) == (409, {
                "error": "job is stopping: 'stop' was accepted at step 7; nothing after it is "
                "applied"})  # fmt: skip
        assert running.pending() == ["save", "stop"]
    finally:
        running.close()
