"""`StopSignals`: SIGTERM / SIGINT become "checkpoint and stop at the next step boundary".

A cluster scheduler's SIGTERM or a user's Ctrl-C must not lose the work since
the last checkpoint, and must not interrupt a save half way. So while the
context is active the handler only records the signal; the loop asks `poll()`
after each optimizer step whether to stop. A second SIGINT raises
KeyboardInterrupt at once, for the user who really wants out (the previous
checkpoints stay intact: saves are atomic).

This is the trainers' stop policy (`BaseTrainer._stop_signals`): one process
stops for the signal it received; the multi-process trainers subclass it so
that every rank stops at the same step (`parallel/multiprocess.py`).

Handlers can only be installed from the main thread; elsewhere (a notebook
worker thread, a test runner thread) the context does nothing.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType

__all__ = ["StopSignals"]


class StopSignals:
    """Context manager recording SIGTERM and SIGINT instead of dying on them."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.received: str | None = None  # name of the first signal caught, e.g. "SIGTERM"
        self._previous: dict[int, object] = {}

    def poll(self) -> str | None:
        """The signal to stop for at this step boundary, or None (the loop calls it every step)."""
        return self.received

    @property
    def stopped_by(self) -> str | None:
        """The signal the run reports having stopped for (`metrics["stopped_by"]`)."""
        return self.received

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.received is None:
            self.received = signal.Signals(signum).name

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
