"""The decode thread-count tuner, driven by step timings: it keeps the faster setting,
drops a stalling one after one step, holds its choice and re-measures when steps slow down."""

from __future__ import annotations

from forgather.serve.threads import ThreadTuner


def _run(tuner: ThreadTuner, steps: int, seconds_per_row: dict[int, float], rows: int = 8):
    """Run ``steps`` decode steps whose cost depends on the thread count; return the counts used."""
    used = []
    for _ in range(steps):
        threads = tuner.next_threads()
        used.append(threads)
        tuner.record(threads, rows, seconds_per_row[threads] * rows)
    return used


def test_one_thread_means_nothing_to_tune():
    tuner = ThreadTuner(1)
    assert not tuner.enabled
    assert _run(tuner, 10, {1: 1e-3}) == [1] * 10


def test_stalling_threads_are_dropped_after_one_step():
    tuner = ThreadTuner(2, probe_steps=3, min_hold=50)
    used = _run(tuner, 64, {1: 1e-3, 2: 9e-3})  # another process holds a core: 2 threads stall
    # A probe: 4 steps on 1 thread, one on 2; then 50 held; then the same probe again.
    assert used == ([1] * 4 + [2] + [1] * 50) + [1] * 4 + [2] + [1] * 4
    assert tuner.current == 1


def test_faster_setting_is_kept_and_held_longer_while_it_stands():
    tuner = ThreadTuner(2, probe_steps=3, min_hold=20, max_hold=80)
    used = _run(tuner, 8, {1: 1e-3, 2: 0.6e-3})  # a quiet machine: 2 threads are faster
    assert used == [1] * 4 + [2] * 4 and tuner.current == 2 and tuner.hold == 40
    used = _run(tuner, 40 + 8 + 80 + 8, {1: 1e-3, 2: 0.6e-3})
    assert used.count(1) == 8  # two more probes (4 steps on 1 thread each), holds 40 then 80
    assert tuner.current == 2 and tuner.hold == 80


def test_a_slowdown_ends_the_hold_and_the_choice_follows_the_load():
    tuner = ThreadTuner(2, probe_steps=3, min_hold=1000)
    _run(tuner, 8, {1: 1e-3, 2: 0.6e-3})
    assert tuner.current == 2
    used = _run(tuner, 20, {1: 1e-3, 2: 6e-3})  # load arrives: 2 threads now stall
    assert used[:5] == [2] * 5  # five slow steps show the slowdown
    assert tuner.current == 1 and used[-5:] == [1] * 5
