"""`release_freed_memory` hands the heap's free pages back: resident memory drops, and the
trainer does it between a step's forward and its backward."""

from __future__ import annotations

import pytest
import torch

from forgather.ml.trainer import Trainer, TrainingArguments, host_memory

from . import tiny_lm


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


class HolesInForward(tiny_lm.TinyLM):
    """TinyLM whose forward leaves 128 MiB of heap holes and whose backward reads RSS.

    The last block is kept (on the module), so the holes lie below it and
    free() alone cannot hand them back by shrinking the heap.
    """

    def forward(self, input_ids, labels=None, **kwargs):
        blocks = [torch.ones(16 * 1024) for _ in range(2048)]  # 64 KiB each: heap, not mmap
        self.kept = blocks[-1]
        self.resident_after_forward_temporaries = resident_mib()
        del blocks
        out = super().forward(input_ids, labels=labels)
        out["loss"] = ReadResidentInBackward.apply(out["loss"], self)
        return out


class ReadResidentInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, loss, model):
        ctx.model = model
        return loss.clone()

    @staticmethod
    def backward(ctx, grad):
        ctx.model.resident_at_backward = resident_mib()
        return grad, None


@pytest.mark.skipif(
    host_memory._malloc_trim() is None, reason="the C library has no malloc_trim (not glibc)"
)
@pytest.mark.parametrize("release", [False, True])
def test_the_trainer_releases_the_forwards_holes_before_the_backward(tmp_path, release):
    torch.manual_seed(0)
    model = HolesInForward()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=4,
                             report_to="none", disable_tqdm=True, save_strategy="no",
                             release_host_memory=release)  # fmt: skip
    Trainer(model=model, args=args, train_dataset=tiny_lm.token_rows(8),
            data_collator=tiny_lm.collate).train()  # fmt: skip
    released = model.resident_after_forward_temporaries - model.resident_at_backward
    if release:
        assert released > 64, f"only {released:.0f} MiB of 128 MiB of holes released"
    else:
        assert released < 32, f"{released:.0f} MiB released with release_host_memory=False"
