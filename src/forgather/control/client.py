"""Talking to running jobs from Python (``forgather control`` uses this).

>>> from forgather import control
>>> for job in control.list_jobs(): print(job.job_id, control.status(job)["step"])  # doctest: +SKIP
>>> control.send("2026", "save")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .registry import JobRecord, find_job, list_jobs, unregister

_TIMEOUT = 5.0  # seconds; a live job answers from a side thread at once


class ControlError(RuntimeError):
    """A job could not be reached, refused the request, or has finished."""


def _job(job: str | JobRecord) -> JobRecord:
    return job if isinstance(job, JobRecord) else find_job(job)


def _request(job: JobRecord, method: str, path: str, body: dict | None = None) -> dict[str, Any]:
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
            raise ControlError(f"job {job.job_id} has finished (its process is gone)") from None
        raise ControlError(f"job {job.job_id} does not answer: {e}") from None


def status(job: str | JobRecord) -> dict[str, Any]:
    """The job's latest status: step, epoch, loss, learning_rate, tokens_per_second, ..."""
    return _request(_job(job), "GET", "/status")


def send(job: str | JobRecord, command: str) -> dict[str, Any]:
    """Send ``save``, ``stop``, ``save-stop`` or ``abort``; applied at the next step boundary."""
    return _request(_job(job), "POST", "/command", {"command": command})


def cleanup(force: bool = False) -> list[JobRecord]:
    """Remove entries whose process is gone (``force``: also those that do not answer)."""
    removed = []
    for job in list_jobs():
        dead = not job.alive()
        if not dead and force:
            try:
                status(job)
            except ControlError:
                dead = True
        if dead:
            unregister(job.job_id)
            removed.append(job)
    return removed


__all__ = ["ControlError", "cleanup", "list_jobs", "send", "status"]
