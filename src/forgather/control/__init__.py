"""Job control: find running training jobs and steer them (no torch here).

``registry`` lists jobs (one JSON file each), ``client`` talks to them,
``server`` is what a job runs on 127.0.0.1; the trainer side is
``forgather.ml.trainer.callbacks.TrainerControlCallback``, which uses the
job side of this package (``ControlServer``, ``register``, ``mark_ended``,
``new_job_id``, ``new_token``) through these public names.
"""

from .client import ControlError, cleanup, list_remote, send, status
from .protocol import COMMANDS
from .registry import (
    JobNotFound,
    JobRecord,
    find_job,
    list_jobs,
    mark_ended,
    new_job_id,
    new_token,
    register,
    registry_dir,
)
from .server import ControlServer, parse_command

__all__ = [
    "COMMANDS",
    "ControlError",
    "ControlServer",
    "JobNotFound",
    "JobRecord",
    "cleanup",
    "find_job",
    "list_jobs",
    "list_remote",
    "mark_ended",
    "new_job_id",
    "new_token",
    "parse_command",
    "register",
    "registry_dir",
    "send",
    "status",
]
