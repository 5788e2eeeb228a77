"""Suite-wide: a leaked socket (file, event loop...) fails the test that leaked it.

Python reports an object that was never closed with a ``ResourceWarning`` from
its finaliser, and ``filterwarnings = error`` makes that an error. But a
finaliser runs when the garbage collector gets to the object: during some
later test, which then fails for no fault of its own, or when pytest ends,
after its summary, where a traceback then replaces "N passed, M failed" as
the last thing CI prints.

Decision a reader may question: garbage is collected at the end of *every*
test, in its teardown, where pytest's unraisable-exception hook turns the
warning into an error of that test ("ERROR at teardown of test_x"). To keep
that cheap, everything alive once collection is done (imported modules, the
collected tests) is frozen out of the collector (``gc.freeze``), and so is
whatever survives a module; at the end of the session everything is unfrozen
and collected once more, still inside the last test's teardown, after pytest's
own hold on the last failure (``sys.last_*``) is dropped. A leak that only
the end of the session reveals is therefore reported as an error of the last
test, in the summary, instead of after it.
"""

from __future__ import annotations

import gc
import sys

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    gc.collect()
    gc.freeze()  # imports and collected items: never garbage during the run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` need CUDA: where torch sees none they are skipped, saying so."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _collect_garbage_at_session_end():
    yield
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        if hasattr(sys, name):  # pytest keeps the last failure (and its frames) alive
            delattr(sys, name)
    gc.unfreeze()
    gc.collect()


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_after_module():
    yield
    gc.collect()  # what the module's fixtures left behind
    gc.freeze()  # and what they keep alive for later modules, out of the per-test collections


@pytest.fixture(autouse=True)
def _collect_garbage_after_test():
    yield
    gc.collect()
