"""The wire protocol between ``forgather control`` and a training job.

HTTP/1.1 on 127.0.0.1, JSON bodies, the job's secret token as a bearer token:

- ``GET /status`` -> the job's status (step, epoch, loss, learning rate, ...);
- ``POST /command`` with ``{"command": "save"}`` -> ``{"accepted": "save"}``.

Errors are ``{"error": "..."}`` with 400 (malformed), 401 (bad token) or 404.
"""

from __future__ import annotations

#: Commands a job accepts. ``save`` checkpoints now (and evaluates when the
#: config asks), ``stop`` saves then exits cleanly, ``save-stop`` is the same
#: spelled out, ``abort`` exits at once without saving.
COMMANDS = ("save", "stop", "save-stop", "abort")
