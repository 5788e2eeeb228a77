"""The job registry, the loopback server and the client, without a trainer."""

import json
import os
import stat
import subprocess
import sys
import urllib.request

import pytest

from forgather import control
from forgather.control.registry import JobRecord, new_job_id, new_token, register
from forgather.control.server import ControlServer


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FORGATHER_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def job():
    token = new_token()
    server = ControlServer(token, lambda: {"step": 7, "loss": 1.5}).start()
    record = JobRecord(new_job_id(), os.getpid(), __import__("socket").gethostname(), server.port, token, "/run")
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
    assert control.send(record, "save") == {"accepted": "save"}
    assert control.send(record, "stop") == {"accepted": "stop"}
    assert server.pending() == ["save", "stop"]
    assert server.pending() == []


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


def test_finished_job_and_cleanup(job):
    record, _ = job
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = JobRecord("19990101-000000-dead00", int(dead.stdout), record.host, 9, "t", "/run")
    register(gone)
    with pytest.raises(control.ControlError, match="has finished"):
        control.status(gone)
    removed = control.cleanup()
    assert [j.job_id for j in removed] == [gone.job_id]
    assert [j.job_id for j in control.list_jobs()] == [record.job_id]
