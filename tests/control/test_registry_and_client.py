"""The job registry, the loopback server and the client, without a trainer."""

import json
import os
import socket
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from forgather import control
from forgather.control.registry import JobRecord, mark_ended, new_job_id, new_token, register
from forgather.control.server import ControlServer


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGATHER_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def job():
    token = new_token()
    server = ControlServer(token, lambda: {"step": 7, "loss": 1.5}).start()
    record = JobRecord(new_job_id(), os.getpid(), socket.gethostname(), server.port, token, "/run")
    register(record)
    yield record, server
    server.close()


def test_register_writes_a_private_file(job):
    record, _ = job
    mode = stat.S_IMODE(os.stat(record.path).st_mode)
    assert mode == 0o600
    assert json.loads(record.path.read_text())["token"] == record.token
    assert [j.job_id for j in control.list_jobs()] == [record.job_id]


def test_status_and_commands(job):
    record, server = job
    assert control.status(record.job_id[:10]) == {"step": 7, "loss": 1.5}
    assert control.send(record, "save") == {"accepted": "save", "step": 7}
    assert control.send(record, "stop") == {"accepted": "stop", "step": 7}
    assert server.next_command() == "save"
    assert server.pending() == ["stop"]
    assert server.next_command() is None


def test_wrong_token_malformed_and_unknown_are_refused(job):
    record, server = job
    bad = JobRecord(**{**record.__dict__, "token": "wrong"})
    with pytest.raises(control.ControlError, match="missing or wrong token"):
        control.send(bad, "save")
    with pytest.raises(control.ControlError, match="unknown command 'explode'"):
        control.send(record, "explode")
    request = urllib.request.Request(record.url + "/command", data=b"{not json", method="POST")
    request.add_header("Authorization", f"Bearer {record.token}")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=5)
    assert info.value.code == 400 and "malformed" in json.loads(info.value.read())["error"]
    assert server.pending() == []  # nothing reached the training loop
    assert control.status(record)["step"] == 7  # and the server still answers


def test_server_binds_only_to_loopback(job):
    _, server = job
    assert server._httpd.server_address[0] == "127.0.0.1"


def test_prefixes_must_be_unique(job):
    record, _ = job
    other = JobRecord(record.job_id[:-1] + "z", os.getpid(), record.host, 1, "t", "/run")
    register(other)
    with pytest.raises(control.JobNotFound, match="ambiguous"):
        control.find_job(record.job_id[:8])
    assert control.find_job(record.job_id).job_id == record.job_id
    with pytest.raises(control.JobNotFound, match="no job matches"):
        control.find_job("nope")


def test_a_killed_job_is_gone_and_cleanup_removes_it(job):
    record, _ = job
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone = JobRecord("19990101-000000-dead00", int(dead.stdout), record.host, 9, "t", "/run")
    register(gone)
    with pytest.raises(control.ControlError, match="is gone: its process .* no longer exists"):
        control.status(gone)
    removed = control.cleanup()
    assert [j.job_id for j in removed] == [gone.job_id]
    assert [j.job_id for j in control.list_jobs()] == [record.job_id]


def _post(record, body: bytes, token: str | None = None, path: str = "/command"):
    request = urllib.request.Request(record.url + path, data=body, method="POST")
    request.add_header("Authorization", f"Bearer {token or record.token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize(
    ("body", "token", "path", "code", "error"),
    [
        (b'{"command": "save"}', "wrong", "/command", 401, "wrong token"),
        (b"[1, 2]", None, "/command", 400, "malformed"),
        (b'{"cmd": "save"}', None, "/command", 400, "malformed"),
        (b'{"command": ["save"]}', None, "/command", 400, "unknown command"),
        (b"x" * 5000, None, "/command", 400, "malformed"),
        (b'{"command": "save"}', None, "/elsewhere", 404, "no such endpoint"),
    ],
)
def test_bad_requests_get_an_error_and_queue_nothing(job, body, token, path, code, error):
    record, server = job
    assert _post(record, body, token, path)[0] == code
    assert error in _post(record, body, token, path)[1]["error"]
    assert server.pending() == []
    assert _post(record, b'{"command": "save"}') == (200, {"accepted": "save", "step": 7})


def test_an_ended_job_says_so(job):
    record, server = job
    mark_ended(record, "stopped", 42)
    assert stat.S_IMODE(os.stat(record.path).st_mode) == 0o600
    (listed,) = control.list_jobs()
    assert (listed.ended, listed.end_step) == ("stopped", 42)
    with pytest.raises(
        control.ControlError, match=r"has ended \(stopped at step 42\); nothing to save"
    ):
        control.send(record.job_id, "save")
    assert control.status(record.job_id)["state"] == "stopped"
    assert server.pending() == []
    assert [j.job_id for j in control.cleanup()] == [record.job_id]  # its process still runs
    assert control.list_jobs() == []


def test_a_job_of_another_host_is_not_contacted(job):
    record, server = job
    remote = JobRecord(
        **{**record.__dict__, "job_id": "20000101-000000-remote", "host": "elsewhere"}
    )
    register(remote)
    with pytest.raises(control.ControlError, match="runs on elsewhere"):
        control.send(remote, "save")
    assert server.pending() == []
    assert control.cleanup(force=True) == []  # only that host can tell whether it lives
