"""Job control: find running training jobs and steer them (no torch here).

``registry`` lists jobs (one JSON file each), ``client`` talks to them,
``server`` is what a job runs on 127.0.0.1; the trainer side is
``forgather.ml.trainer.callbacks.TrainerControlCallback``.
"""

from .client import ControlError, cleanup, send, status
from .protocol import COMMANDS
from .registry import JobNotFound, JobRecord, find_job, list_jobs, registry_dir

__all__ = [
    "COMMANDS",
    "ControlError",
    "JobNotFound",
    "JobRecord",
    "cleanup",
    "find_job",
    "list_jobs",
    "registry_dir",
    "send",
    "status",
]
