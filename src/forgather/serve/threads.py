"""Choose the scheduler's intra-op thread count from the decode steps' own timings.

On a CPU shared with other processes, OpenMP threads that wait for each other
at every op collapse: on 2 cores with another process busy, the 4.4M model's
server ran 5-9x slower on 2 threads than on 1, while on a quiet machine 2
threads are faster. No setting fits both, and the load changes while a server
runs, so :class:`ThreadTuner` measures: it times a few decode steps on each
thread count (seconds per row), keeps the faster, holds it for a while
(doubling the hold while the choice stands) and measures again; a hold ends
early when steps become much slower than measured (the load changed).

Decision a reader may question: the probe costs a few steps on the slower
setting each time (one step when it is far slower, else ``probe_steps + 1``, per hold of 256
to 4096 steps), against minutes of 5x slower serving if the thread count were fixed.
"""

from __future__ import annotations

import logging
import statistics

logger = logging.getLogger(__name__)


class ThreadTuner:
    """Picks between 1 and ``most`` intra-op threads for decode steps.

    Usage per step: ``threads = tuner.next_threads()``, set it, run the step,
    ``tuner.record(threads, rows, seconds)``.

    Args:
        most: The thread count otherwise used (``torch.get_num_threads()``).
        probe_steps: Timed steps per thread count in a probe (after one warm-up step).
        min_hold: Steps a choice is held after it changed; doubled while it stands.
        max_hold: Longest hold.
        slowdown: A hold ends early when the recent seconds per row exceed this
            multiple of the chosen setting's measured value.
        abort: A probed setting whose step (warm-up included) takes this multiple
            of another setting's best is dropped from the probe at once.
    """

    def __init__(
        self,
        most: int,
        probe_steps: int = 3,
        min_hold: int = 256,
        max_hold: int = 4096,
        slowdown: float = 2.5,
        abort: float = 3.0,
    ) -> None:
        self.choices = sorted({1, max(1, most)})
        self.current = max(1, most)
        self.probe_steps = probe_steps
        self.min_hold = self.hold = min_hold
        self.max_hold = max_hold
        self.slowdown = slowdown
        self.abort = abort
        self._plan: list[tuple[int, bool]] = []  # (threads, timed) of the probe's steps left
        self._samples: dict[int, list[float]] = {}
        self._held = 0
        self._rate = 0.0  # seconds per row of the current choice, as probed
        self._recent: list[float] = []
        if len(self.choices) > 1:
            self._start_probe()

    @property
    def enabled(self) -> bool:
        return len(self.choices) > 1

    def _start_probe(self) -> None:
        # Fewest threads first (they never stall): a stalling setting is then dropped
        # after its first step. Each setting gets a warm-up step before its timed ones.
        self._plan = [
            (threads, timed)
            for threads in self.choices
            for timed in [False] + [True] * self.probe_steps
        ]
        self._samples = {threads: [] for threads in self.choices}

    def next_threads(self) -> int:
        """The thread count to run the next decode step with."""
        return self._plan[0][0] if self._plan else self.current

    def record(self, threads: int, rows: int, seconds: float) -> None:
        """Account one decode step of ``rows`` rows that took ``seconds`` on ``threads``."""
        if not self.enabled or rows <= 0:
            return
        per_row = seconds / rows
        if self._plan:
            planned, timed = self._plan.pop(0)
            if timed and planned == threads:
                self._samples[threads].append(per_row)
            others = [min(v) for t, v in self._samples.items() if v and t != planned]
            if others and per_row > self.abort * min(others):
                # Far slower already (e.g. threads stalled by other processes): stop probing it.
                self._samples[planned].append(per_row)
                self._plan = [step for step in self._plan if step[0] != planned]
            if not self._plan:
                self._decide()
            return
        self._held += 1
        self._recent = (self._recent + [per_row])[-5:]
        slowed = (
            len(self._recent) == 5 and statistics.median(self._recent) > self.slowdown * self._rate
        )
        if self._held >= self.hold or slowed:
            self._start_probe()

    def _decide(self) -> None:
        rates = {t: statistics.median(s) for t, s in self._samples.items() if s}
        if not rates:
            return
        best = min(rates, key=rates.get)
        if best == self.current:
            self.hold = min(self.max_hold, 2 * self.hold)
        else:
            self.hold = self.min_hold
            other = rates.get(self.current, float("nan"))
            # A warning only for a stall (the other setting far slower), not a close call.
            stalled = best < max(self.choices) and other > self.abort * rates[best]
            logger.log(
                logging.WARNING if stalled else logging.INFO,
                "decode steps are faster on %d intra-op thread(s) than on %d (%.3g vs %.3g ms per row)%s",
                best,
                self.current,
                rates[best] * 1e3,
                other * 1e3,
                "; other processes seem to be using the cores" if stalled else "",
            )
        self.current, self._rate = best, rates[best]
        self._held, self._recent = 0, []
