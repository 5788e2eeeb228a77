"""``forgather control``: steer running training jobs from another terminal.

    forgather control list                 # job id, config, step, status, age
    forgather control list --remote localhost:8947   # and the job answering there
    forgather control status 2026          # a unique prefix of the job id is enough
    forgather control save 2026            # checkpoint at the next step boundary
    forgather control stop 2026            # save, then exit cleanly
    forgather control abort 2026           # exit now, no checkpoint
    forgather control cleanup [--force]    # forget jobs that ended or whose process is gone

Decision a reader may question: ``list`` asks every running job for its
status, one short request each, so the table shows live steps; a job that
does not answer is listed with the reason ("gone", "not answering") rather
than hidden, and an ended job with how it ended until ``cleanup``.
"""

from __future__ import annotations

import argparse
import socket
import time

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.errors import CLIError, UsageError

_ACTIONS = ("list", "status", "save", "stop", "save-stop", "abort", "cleanup")


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=_ACTIONS, help="what to do")
    parser.add_argument("job", nargs="?", help="job id or a unique prefix of it")
    parser.add_argument(
        "--force",
        action="store_true",
        help="cleanup: also jobs that do not answer (abort: accepted, it never asks anyway)",
    )
    parser.add_argument(
        "--remote",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="list: also the job whose control port answers at HOST:PORT "
        "(its own port, or one forwarded to it); repeatable",
    )


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


_STATUS_ORDER = ("state", "step", "max_steps", "epoch", "loss", "learning_rate",
                 "tokens_per_second", "eta_seconds", "last_checkpoint", "run_dir")  # fmt: skip


def _format_status(status: dict) -> str:
    keys = [k for k in _STATUS_ORDER if k in status]
    keys += sorted(k for k in status if k not in _STATUS_ORDER)
    width = max(map(len, keys), default=0)
    return "\n".join(f"{k:<{width}}  {status[k]}" for k in keys)


def _list_row(job) -> tuple[str, str]:
    """(step, status) of one job for the ``list`` table."""
    from forgather import control

    if job.ended:
        return str(job.end_step), job.ended
    if job.host != socket.gethostname():
        return "?", f"on {job.host}"
    if not job.alive():
        return "?", "gone (run cleanup)"
    try:
        status = control.status(job)
    except control.ControlError:
        return "?", "not answering"
    return str(status.get("step", "?")), str(status.get("state", "running"))


def _run(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather import control

    if args.remote and args.action != "list":
        raise UsageError("--remote goes with list only")
    if args.force and args.action not in ("cleanup", "abort"):
        raise UsageError("--force goes with cleanup (and abort) only")
    if args.action == "list":
        rows = [("JOB", "CONFIG", "STEP", "STATUS", "AGE")]
        listed = set()
        for job in control.list_jobs():
            step, state = _list_row(job)
            rows.append((job.job_id, job.config, step, state, _age(time.time() - job.start_time)))
            listed.add(job.job_id)
        for address in args.remote:
            try:
                remote = control.list_remote(address)
            except control.ControlError as e:
                raise CLIError(str(e)) from None
            for job in remote:
                if job.get("job_id") in listed:  # a local job reached through its own port
                    continue
                listed.add(job.get("job_id"))
                age = _age(time.time() - job["start_time"]) if job.get("start_time") else "?"
                rows.append((str(job.get("job_id", "?")), str(job.get("config") or ""),
                             str(job.get("step", "?")), f"{job.get('state', '?')} at {address}",
                             age))  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        ctx.emit("\n".join(lines))
        return 0
    if args.action == "cleanup":
        removed = control.cleanup(force=args.force)
        ctx.emit("\n".join(f"removed {j.job_id}" for j in removed) or "nothing to clean up")
        return 0
    if not args.job:
        raise CLIError(
            f"forgather control {args.action} needs a job id (see: forgather control list)"
        )
    try:
        if args.action == "status":
            ctx.emit(_format_status(control.status(args.job)))
        else:
            job = control.find_job(args.job)
            reply = control.send(job, args.action)
            ctx.emit(
                f"job {job.job_id}: {reply['accepted']} accepted at step {reply.get('step')}; "
                "applied at the next step boundary"
            )
    except (control.ControlError, control.JobNotFound) as e:
        raise CLIError(str(e)) from None
    return 0


COMMANDS = {
    "control": Command(
        run=_run,
        add_arguments=_arguments,
        description="Jobs register themselves when they start; see docs/control.md.",
        intermixed=True,  # control abort --force JOB
    )
}
