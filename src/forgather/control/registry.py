"""The job registry: one small JSON file per running training job.

A job registers itself when training starts (rank 0 only) and, when it
ends, rewrites its entry to say how (``finished``, ``stopped``, ``aborted``,
``failed``) and at which step. ``forgather control`` reads the files to find
jobs; ``cleanup`` removes the entries of jobs that ended or whose process is
gone (killed: nothing ran to update the file).

Decisions a reader may question: an ended job keeps its entry (until
``cleanup``) so that a command sent to it is answered "it has ended" rather
than "no such job". The registry is a directory of files, not a database, so
a crashed job leaves at most one stale file and no lock; each file holds the
job's secret token, so it is written with mode 0600 (created with those
permissions, then renamed into place atomically).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: Environment variable that moves the registry (tests, shared machines).
STATE_DIR_ENV = "FORGATHER_STATE_DIR"


def registry_dir() -> Path:
    """Where job files live: ``$FORGATHER_STATE_DIR/jobs`` or the user's state dir."""
    base = os.environ.get(STATE_DIR_ENV)
    if not base:
        import platformdirs

        base = platformdirs.user_state_dir("forgather")
    return Path(base) / "jobs"


@dataclass
class JobRecord:
    """What a client needs to reach a job, and what ``list`` shows."""

    job_id: str
    pid: int
    host: str
    port: int
    token: str
    run_dir: str
    config: str = ""
    start_time: float = field(default_factory=time.time)
    world_size: int = 1
    ended: str = ""  # "" while it runs; then "finished", "stopped", "aborted" or "failed"
    end_step: int | None = None
    end_time: float | None = None

    @property
    def path(self) -> Path:
        return registry_dir() / f"{self.job_id}.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        """Whether the job's process still exists (on this host)."""
        if self.host != socket.gethostname():
            return True  # cannot tell from here; never remove it silently
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def new_job_id() -> str:
    """A short, sortable, unique id: time then randomness (``20261122-181500-3fa2c1``)."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def new_token() -> str:
    """A fresh secret for one job (192 random bits, URL-safe)."""
    return secrets.token_urlsafe(24)


def register(record: JobRecord, directory: Path | None = None) -> Path:
    """Write the job's file atomically with mode 0600.

    Args:
        record: the job.
        directory: the registry (default :func:`registry_dir`); a job passes
            the one it first registered in, so later rewrites land there even
            if the environment changed.

    Returns:
        The file written.
    """
    directory = directory or registry_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{record.job_id}.json"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(record), f, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def mark_ended(
    record: JobRecord, how: str, step: int | None, directory: Path | None = None
) -> None:
    """Rewrite the job's entry to say it ended (``how``) at ``step`` (see :func:`register`)."""
    record.ended, record.end_step, record.end_time = how, step, time.time()
    register(record, directory)


def unregister(job_id: str) -> None:
    """Remove the job's entry (a missing one is fine)."""
    (registry_dir() / f"{job_id}.json").unlink(missing_ok=True)


def list_jobs() -> list[JobRecord]:
    """Every registered job, oldest first; unreadable files are skipped."""
    directory = registry_dir()
    if not directory.is_dir():
        return []
    jobs = []
    for path in sorted(directory.glob("*.json")):
        try:
            jobs.append(JobRecord(**json.loads(path.read_text())))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(jobs, key=lambda j: j.start_time)


class JobNotFound(LookupError):
    """No job, or several, match the given id prefix."""


def find_job(prefix: str) -> JobRecord:
    """The one job whose id starts with ``prefix``."""
    matches = [j for j in list_jobs() if j.job_id.startswith(prefix)]
    if not matches:
        raise JobNotFound(f"no job matches {prefix!r} (see `forgather control list`)")
    if len(matches) > 1:
        ids = ", ".join(j.job_id for j in matches)
        raise JobNotFound(f"{prefix!r} is ambiguous: {ids}")
    return matches[0]
