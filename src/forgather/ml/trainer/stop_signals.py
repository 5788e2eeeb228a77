"""`StopSignals`: SIGTERM / SIGINT become "checkpoint and stop at the next step boundary".

A cluster scheduler's SIGTERM or a user's Ctrl-C must not lose the work since
the last checkpoint, and must not interrupt a save half way. So while the
context is active the handler only records the signal; the loop checks it after
each optimizer step. A second SIGINT raises KeyboardInterrupt at once, for the
user who really wants out (the previous checkpoints stay intact: saves are atomic).

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
