"""`release_freed_memory` hands the heap's free pages back: resident memory drops."""

from __future__ import annotations

import pytest
import torch

from forgather.ml.trainer import host_memory


def resident_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(
    host_memory._malloc_trim() is None, reason="the C library has no malloc_trim (not glibc)"
)
def test_freed_holes_in_the_heap_leave_resident_memory_after_a_release():
    # 64 KiB blocks come from the heap (below glibc's 128 KiB mmap threshold); freeing
    # every other one leaves holes that free() alone never returns.
    blocks = [torch.ones(16 * 1024) for _ in range(4096)]  # 256 MiB, touched
    del blocks[::2]
    held = resident_mib()
    assert host_memory.release_freed_memory()
    released = held - resident_mib()
    assert released > 64, f"only {released:.0f} MiB of 128 MiB of holes released"
    assert all(float(b[0]) == 1.0 for b in blocks)  # the live blocks are intact
