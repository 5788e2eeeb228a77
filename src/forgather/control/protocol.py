"""The wire protocol between ``forgather control`` and a training job.

HTTP/1.1 on 127.0.0.1, JSON bodies, the job's secret token as a bearer token:

- ``GET /jobs`` (no token) -> ``{"jobs": [{job_id, config, pid, host, port,
  start_time, world_size, state, step}]}``, what ``control list --remote`` shows;
- ``GET /status`` -> the job's status (step, epoch, loss, learning rate, ...);
- ``POST /command`` with ``{"command": "save"}`` -> ``{"accepted": "save", "step": 120}``
  (the job's step when the command arrived; it is applied at the end of the
  step running then, so the checkpoint of a ``save`` is at most two steps later).

Errors are ``{"error": "..."}`` with 400 (malformed), 401 (bad token) or 404.
"""

from __future__ import annotations

#: Commands a job accepts. ``save`` checkpoints now (and evaluates when the
#: config asks), ``stop`` saves then exits cleanly, ``save-stop`` is the same
#: spelled out, ``abort`` exits at once without saving.
COMMANDS = ("save", "stop", "save-stop", "abort")
