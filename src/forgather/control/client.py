"""Talking to running jobs from Python (``forgather control`` uses this).

>>> from forgather import control
>>> for job in control.list_jobs(): print(job.job_id, control.status(job)["step"])  # doctest: +SKIP
>>> control.send("2026", "save")  # doctest: +SKIP
{'accepted': 'save', 'step': 120}

Decision a reader may question: a job that has ended answers ``status`` from
its registry entry (its final state and step) but refuses commands with a
``ControlError`` that says so, and a job whose process vanished (``kill -9``)
is reported as gone rather than as a network error.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

from .registry import JobRecord, find_job, list_jobs, unregister

_TIMEOUT = 5.0  # seconds; a live job answers from a side thread at once


class ControlError(RuntimeError):
    """A job could not be reached, refused the request, or has ended."""


def _job(job: str | JobRecord) -> JobRecord:
    return job if isinstance(job, JobRecord) else find_job(job)


def _gone(job: JobRecord) -> ControlError:
    return ControlError(
        f"job {job.job_id} is gone: its process {job.pid} no longer exists "
        "(killed?); `forgather control cleanup` removes its entry"
    )


def _request(job: JobRecord, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
    if job.host != socket.gethostname():  # the server listens on the job's loopback only
        raise ControlError(f"job {job.job_id} runs on {job.host}; run forgather control there")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(job.url + path, data=data, method=method)
    request.add_header("Authorization", f"Bearer {job.token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        try:
            reason = json.loads(e.read()).get("error", e.reason)
        except ValueError:
            reason = e.reason
        raise ControlError(f"job {job.job_id} refused: {reason}") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        if not job.alive():
            raise _gone(job) from None
        raise ControlError(f"job {job.job_id} does not answer: {e}") from None


def status(job: str | JobRecord) -> dict[str, Any]:
    """The job's latest status.

    Args:
        job: a job id, a unique prefix of one, or a record from :func:`list_jobs`.

    Returns:
        ``state`` ("running", "stopping", or how it ended), ``step``,
        ``max_steps``, ``epoch``, ``loss``, ``learning_rate``,
        ``tokens_per_second``, ``eta_seconds``, ``last_checkpoint``, ``run_dir``
        (keys the job has not seen yet are missing).

    Raises:
        ControlError: the job is gone or does not answer.
        JobNotFound: no job, or several, match ``job``.
    """
    record = _job(job)
    if record.ended:
        return {"state": record.ended, "step": record.end_step, "run_dir": record.run_dir}
    return _request(record, "GET", "/status")


def send(job: str | JobRecord, command: str) -> dict[str, Any]:
    """Send a command; the job applies it at its next step boundary, on every rank.

    Args:
        job: a job id, a unique prefix of one, or a record from :func:`list_jobs`.
        command: ``save``, ``stop``, ``save-stop`` or ``abort`` (see ``COMMANDS``).

    Returns:
        ``{"accepted": command, "step": the job's step when the command arrived}``.

    Raises:
        ControlError: the job refused the command (unknown command, wrong
            token), has ended, is gone, or does not answer.
        JobNotFound: no job, or several, match ``job``.
    """
    record = _job(job)
    if record.ended:
        raise ControlError(
            f"job {record.job_id} has ended ({record.ended} at step {record.end_step}); "
            f"nothing to {command}"
        )
    return _request(record, "POST", "/command", {"command": command})


def list_remote(address: str) -> list[dict[str, Any]]:
    """The jobs a control endpoint at ``HOST:PORT`` describes (``GET /jobs``, no token).

    A job listens on its host's loopback only, so ``address`` is a job's own
    port on this machine or one forwarded to it (``ssh -L 8947:127.0.0.1:PORT node``).

    Raises:
        ControlError: ``address`` is not ``HOST:PORT``, or nothing answers there.
    """
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ControlError(f"--remote {address!r}: expected HOST:PORT, e.g. localhost:8947")
    host = host.strip("[]")
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/jobs"  # [IPv6]
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as response:
            jobs = json.loads(response.read()).get("jobs", [])
    except urllib.error.HTTPError as e:
        raise ControlError(f"{address} answered {e.code}: not a forgather job endpoint") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError) as e:
        raise ControlError(f"nothing answers at {address}: {e}") from None
    return [job for job in jobs if isinstance(job, dict)]


def cleanup(force: bool = False) -> list[JobRecord]:
    """Remove the entries of jobs that ended or whose process is gone.

    Args:
        force: also remove jobs whose process exists but that do not answer
            (a reused pid, or a hung job). Jobs of other hosts (a state dir
            shared over the network) are left alone unless they ended.

    Returns:
        The records removed.
    """
    removed = []
    for job in list_jobs():
        if job.host != socket.gethostname() and not job.ended:
            continue  # a shared state dir: only that host can tell whether it lives
        dead = bool(job.ended) or not job.alive()
        if not dead and force:
            try:
                _request(job, "GET", "/status")
            except ControlError:
                dead = True
        if dead:
            unregister(job.job_id)
            removed.append(job)
    return removed


__all__ = ["ControlError", "cleanup", "list_jobs", "list_remote", "send", "status"]
