"""`forgather control` against real `forgather train` jobs, on 1 process and on 2 (DDP).

Each test starts the shrunk tiny_llama job (see jobs.py), which would train
for a million steps, and ends it through the control channel (stop, abort)
or with `kill -9`. That every rank applies a command at the same step is
read from the line each rank logs when it applies one
(`forgather control: save at step 12 (rank 1 of 2)`) and from the step of the
checkpoint written.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from forgather import control

from .jobs import TrainingJob, accepted_step, applied, run_control, wait_for

pytestmark = pytest.mark.slow  # each test starts a real training job (6-15 s)

NPROC = [pytest.param(1, id="1proc"), pytest.param(2, id="2proc-ddp")]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """Tokenizer and tokenized data, built by the first job and reused by the others."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def start(tmp_path, monkeypatch, cache_dir):
    """Starts jobs with a private registry (this process and the jobs share it)."""
    monkeypatch.setenv("FORGATHER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("FORGATHER_CACHE_DIR", str(cache_dir))
    jobs: list[TrainingJob] = []

    def start_job(nproc: int) -> TrainingJob:
        workdir = tmp_path / f"job{len(jobs)}"
        workdir.mkdir()
        jobs.append(TrainingJob(workdir, nproc))
        return jobs[-1]

    yield start_job
    for job in jobs:
        job.finish()


def _row(job: TrainingJob) -> tuple[str, str]:
    """(step, status) of the job in `forgather control list`."""
    listing = run_control("list")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[0].split() == ["JOB", "CONFIG", "STEP", "STATUS", "AGE"]
    (row,) = [line for line in listing.stdout.splitlines() if line.startswith(job.job_id)]
    step, status = re.fullmatch(r"\S+  .+?  +(\S+)  +(.+?)  +\S+", row).groups()
    return step, status


def _cli_step(job_id: str) -> int:
    result = run_control("status", job_id)
    assert result.returncode == 0, result.stderr
    return int(re.search(r"^step +(\d+)$", result.stdout, re.M).group(1))


def _same_step_on_every_rank(job: TrainingJob, command: str, nproc: int) -> int:
    """The step at which all `nproc` ranks applied `command` (fails if they differ)."""
    steps = wait_for(lambda: (s := applied(job.stderr(), command)) and len(s) == nproc and s,
                     f"{nproc} rank(s) to apply {command}")  # fmt: skip
    assert sorted(steps) == list(range(nproc))
    assert len(set(steps.values())) == 1, f"ranks applied {command} at different steps: {steps}"
    return steps[0]


def _bad_requests(record: control.JobRecord) -> list[tuple[int, str]]:
    """A wrong token, a malformed body and an unknown command: (HTTP code, error) each."""
    answers = []
    for token, body in [("wrong", b'{"command": "save"}'), (record.token, b"{not json"),
                        (record.token, b'{"command": "explode"}')]:  # fmt: skip
        request = urllib.request.Request(record.url + "/command", data=body, method="POST")
        request.add_header("Authorization", f"Bearer {token}")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=10)
        answers.append((info.value.code, json.loads(info.value.read())["error"]))
    return answers


@pytest.mark.parametrize("nproc", NPROC)
def test_list_status_save_and_stop(start, nproc):
    job = start(nproc)
    prefix = job.job_id[:15]  # date and time: unique among this test's jobs
    job.wait_for_step(1)
    assert _row(job)[1] == "running"
    assert job.record().world_size == nproc

    # status reports a step that advances
    first = _cli_step(prefix)
    wait_for(lambda: _cli_step(prefix) > first, "the step reported by status to advance")

    # bad requests get an error, and the job keeps training
    answers = _bad_requests(job.record())
    assert [code for code, _ in answers] == [401, 400, 400]
    assert "wrong token" in answers[0][1] and "malformed" in answers[1][1]
    assert "unknown command 'explode'" in answers[2][1]
    after_bad = job.step()
    job.wait_for_step(after_bad + 2)
    assert job.process.poll() is None and job.checkpoints() == []

    # save: a checkpoint within two steps of the step the reply reports
    reply = run_control("save", prefix)
    assert reply.returncode == 0, reply.stderr
    at = accepted_step(reply.stdout)
    (saved,) = wait_for(job.checkpoints, "the checkpoint of `save`")
    assert at <= saved <= at + 2
    assert _same_step_on_every_rank(job, "save", nproc) == saved

    # stop: saves, then the process exits 0
    reply = run_control("stop", prefix)
    assert reply.returncode == 0, reply.stderr
    at = accepted_step(reply.stdout)
    assert job.wait() == 0, job.stderr()
    stopped = _same_step_on_every_rank(job, "stop", nproc)
    assert at <= stopped <= at + 2
    assert job.checkpoints() == [saved, stopped]
    assert (job.output_dir / "model.safetensors").is_file()  # the script finished normally
    assert _row(job) == (str(stopped), "stopped")
    again = run_control("save", prefix)
    assert again.returncode == 1
    assert f"has ended (stopped at step {stopped}); nothing to save" in again.stderr


@pytest.mark.parametrize("nproc", NPROC)
def test_abort_exits_without_a_checkpoint(start, nproc):
    job = start(nproc)
    job.wait_for_step(1)
    reply = run_control("abort", "--force", job.job_id)  # an option before the job: accepted
    assert reply.returncode == 0, reply.stderr
    assert job.wait() != 0
    step = _same_step_on_every_rank(job, "abort", nproc)
    message = rf"^forgather: error: .*aborted by `forgather control abort` at step {step}$"
    assert re.search(message, job.stderr(), re.M), job.stderr()
    assert job.checkpoints() == []
    assert not (job.output_dir / "model.safetensors").exists()
    assert _row(job) == (str(step), "aborted")


@pytest.mark.parametrize("nproc", NPROC)
def test_cleanup_after_kill_9(start, nproc):
    job = start(nproc)
    job.wait_for_step(1)
    job.kill9()  # rank 0, which serves the job; torchrun then ends the other rank
    assert job.wait() != 0
    assert _row(job) == ("?", "gone (run cleanup)")
    status = run_control("status", job.job_id)
    assert status.returncode == 1 and "is gone" in status.stderr
    cleanup = run_control("cleanup")
    assert cleanup.returncode == 0 and cleanup.stdout.strip() == f"removed {job.job_id}"
    assert control.list_jobs() == []
    assert run_control("cleanup").stdout.strip() == "nothing to clean up"
