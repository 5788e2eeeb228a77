"""The job registry: one small JSON file per running training job.

A job registers itself when training starts (rank 0 only) and removes its
entry when it ends. ``forgather control`` reads the files to find jobs; a
file whose process is gone is stale and ``cleanup`` removes it.

Decisions a reader may question: the registry is a directory of files, not a
database, so a crashed job leaves at most one stale file and no lock; each
file holds the job's secret token, so it is written with mode 0600 (created
with those permissions, then renamed into place atomically).
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
    return secrets.token_urlsafe(24)


def register(record: JobRecord) -> Path:
    """Write the job's file atomically with mode 0600."""
    directory = registry_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(record), f, indent=2)
        os.replace(tmp, record.path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return record.path


def unregister(job_id: str) -> None:
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
