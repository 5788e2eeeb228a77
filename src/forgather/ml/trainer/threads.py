"""CPU threads: how many torch uses in a training process, and a warning when the cores are shared.

`configure_threads` sets torch's intra-op threads to the cores this process
may run on (`os.sched_getaffinity`) divided among the node's ranks
(`LOCAL_WORLD_SIZE`, set by torchrun), unless the user chose: an
`OMP_NUM_THREADS`/`MKL_NUM_THREADS` in the environment, an explicit
`TrainingArguments.torch_threads`, or a thread count the program already set
(anything other than torch's own default, which is the affinity's size).

`oversubscription_message` is the check `train()` makes at its start: the
1-minute load average, less this process's own share of it, is what other
processes are running; when that plus our threads exceeds the cores, every
step waits for a thread that has lost its core (measured on 2 cores with a
busy neighbour: 2 threads ran 9x slower than 1).

The decision a reader may question: under load the loop warns and does not
lower the thread count itself. The thread count changes the order of the
matmuls' partial sums, so a run's losses would then depend on what else the
machine was doing; the user decides, with the figure the warning gives.
"""

from __future__ import annotations

import logging
import os
import time

import torch

__all__ = [
    "available_cores",
    "check_oversubscription",
    "configure_threads",
    "fitted_threads",
    "oversubscription_message",
]

logger = logging.getLogger(__name__)

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask; all CPUs where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def fitted_threads(cores: int, local_ranks: int = 1) -> int:
    """Threads per process when `local_ranks` processes share `cores` CPUs (at least 1)."""
    return max(1, cores // max(1, local_ranks))


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads for a training process; return the count in effect.

    Args:
        requested: A positive count sets exactly that; 0 leaves torch as it is;
            None fits the machine (`fitted_threads` of the available cores and
            `LOCAL_WORLD_SIZE`) unless the environment names a count or the
            program already changed torch's default.
    """
    current = torch.get_num_threads()
    if requested is not None and requested < 0:
        raise ValueError(f"torch_threads must be >= 0 or None, got {requested}")
    if requested:
        target = requested
    elif requested == 0 or any(os.environ.get(name) for name in _THREAD_ENV):
        return current
    elif current != available_cores():
        return current  # not torch's default: the program chose it
    else:
        local_ranks = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
        target = fitted_threads(available_cores(), local_ranks)
    if target != current:
        torch.set_num_threads(target)
        logger.info("torch threads: %d (was %d)", target, current)
    return target


def oversubscription_message(load: float, own_load: float, cores: int, threads: int) -> str | None:
    """A warning when other processes leave this one's threads too few cores, else None.

    Args:
        load: The 1-minute load average (runnable threads, all processes).
        own_load: This process's share of it (its CPU seconds per second so far).
        cores: CPUs this process may use.
        threads: Torch's intra-op threads in this process.
    """
    others = max(0.0, load - own_load)
    # A margin for the load average's noise: at least half a core, a tenth on large machines.
    if others + threads <= cores * 1.1 + 0.5:
        return None
    free = max(1, round(cores - others))
    if free < threads:
        advice = (
            f"set OMP_NUM_THREADS={free} (or TrainingArguments.torch_threads={free}), or stop "
            "the other work"
        )
    else:  # fewer threads would not help (one already): only the other work can give way
        advice = "stop the other work, or expect slower steps"
    return (
        f"the cores are oversubscribed: other processes run about {others:.1f} threads on "
        f"the {cores} cores this process may use (load average {load:.1f}), beside torch's "
        f"{threads}. Each step waits for its slowest thread (2 threads on 2 shared "
        f"cores ran 9x slower than 1): {advice}."
    )


def _own_load() -> float:
    """This process's CPU seconds per second of wall time since it started (Linux; else 0)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    cpu = time.process_time()
    return cpu / age if age > 0 else 0.0


def check_oversubscription(threads: int | None = None) -> str | None:
    """Log (and return) `oversubscription_message` for this process now; None where unknown."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        return None
    cores = available_cores()
    threads = torch.get_num_threads() if threads is None else threads
    # Over a minute, this process's runnable threads average its CPU rate (capped by its threads).
    message = oversubscription_message(load, min(_own_load(), threads), cores, threads)
    if message:
        logger.warning(message)
    return message
