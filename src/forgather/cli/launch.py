"""Start ``forgather train`` on several processes and stay in charge of them.

    command = torchrun_command(["-t", "cfg.yaml", "train"], nproc=2, torchrun_args=[])
    exit_code = run_job(command, env)

The launcher is the process a user or a scheduler signals, so it must not go
away while the ranks train. :func:`run_job` starts torchrun in a session of
its own and, on SIGINT, SIGTERM or SIGHUP, passes the signal on and keeps
waiting: the ranks finish their step, save a checkpoint and exit, and their
exit code (through torchrun's) becomes the launcher's.

Decision a reader may question: the first signal goes to the ranks
themselves (torchrun's child processes), not to torchrun. torchrun answers a
signal by forwarding it and killing the ranks 30 seconds later whatever they
are doing, then exits 1 with a traceback; the ranks, told directly, stop at a
step boundary as a job signalled on one node does, and torchrun sees them
exit normally. A second signal goes to torchrun, which then shuts the job
down its own way: whoever insists still gets out, and no process is left.
A SIGHUP (the terminal went away) is passed on as SIGTERM, which the
trainer understands; torchrun's own session keeps the terminal's signals
from reaching it behind the launcher's back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping

# torchrun options that describe a rendezvous of the user's choosing: then plain torchrun.
_RENDEZVOUS_OPTIONS = {
    "--nnodes", "--rdzv-endpoint", "--rdzv_endpoint", "--rdzv-backend", "--rdzv_backend",
    "--master-addr", "--master_addr", "--master-port", "--master_port", "--standalone",
}  # fmt: skip
_FORWARDED = {signal.SIGINT: signal.SIGINT, signal.SIGTERM: signal.SIGTERM}
if hasattr(signal, "SIGHUP"):
    _FORWARDED[signal.SIGHUP] = signal.SIGTERM


def torchrun_command(child_argv: list[str], nproc: int, torchrun_args: list[str]) -> list[str]:
    """The torchrun command that runs ``forgather CHILD_ARGV`` on ``nproc`` processes per node.

    Without rendezvous options the job is one machine's, and runs under
    :mod:`forgather.cli.loopback_torchrun`, whose store listens on 127.0.0.1
    only; with them, under torchrun as the user described it.
    """
    chosen = any(a.split("=", 1)[0] in _RENDEZVOUS_OPTIONS for a in torchrun_args)
    if chosen:
        launcher = ["-m", "torch.distributed.run"]
    else:
        launcher = ["-m", "forgather.cli.loopback_torchrun", "--rdzv-endpoint=127.0.0.1:0"]
    return [
        sys.executable, *launcher, f"--nproc-per-node={nproc}", *torchrun_args,
        "-m", "forgather.cli", *child_argv,
    ]  # fmt: skip


def child_pids(pid: int) -> list[int]:
    """The direct children of process ``pid`` (psutil when installed, else /proc; [] elsewhere)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return [child.pid for child in psutil.Process(pid).children()]
        except psutil.Error:
            return []
    children = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            children.append(int(entry))
    return children


def _send(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # exited meanwhile
        os.kill(pid, signum)


def run_job(command: list[str], env: Mapping[str, str]) -> int:
    """Run ``command`` (torchrun) until it exits, passing signals on; return its exit code.

    Args:
        command: from :func:`torchrun_command`.
        env: the environment of torchrun and the ranks.

    Returns:
        torchrun's exit code; 128 + N when torchrun itself died of signal N.
    """
    process = subprocess.Popen(command, env=dict(env), start_new_session=True)
    signals_seen = 0

    def forward(signum: int, frame: object) -> None:
        nonlocal signals_seen
        signals_seen += 1
        name = signal.Signals(signum).name
        ranks = child_pids(process.pid) if signals_seen == 1 else []
        if ranks:
            print(
                f"forgather: {name}: the ranks will save a checkpoint and stop "
                "(signal again to stop at once)",
                file=sys.stderr,
                flush=True,
            )
            for pid in ranks:
                _send(pid, _FORWARDED[signum])
        else:
            print(f"forgather: {name}: stopping the job", file=sys.stderr, flush=True)
            _send(process.pid, _FORWARDED[signum])

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {signum: signal.signal(signum, forward) for signum in _FORWARDED}
    try:
        code = process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if process.poll() is None:  # the launcher itself is failing: take the job with it
            _send(process.pid, signal.SIGTERM)
            process.wait()
    return 128 - code if code < 0 else code
