"""Atomic checkpoint directories, discovery of complete checkpoints, pruning."""

from __future__ import annotations

import os

import pytest

from forgather.ml.checkpoint_layout import STATE_FILE, latest_checkpoint, list_checkpoints
from forgather.ml.trainer.checkpoint import atomic_directory, prune_checkpoints


def write_checkpoint(root, step, complete=True):
    with atomic_directory(str(root / f"checkpoint-{step}")) as temp:
        (root / os.path.basename(temp) / "weights.bin").write_bytes(b"w" * 10)
        if complete:
            (root / os.path.basename(temp) / STATE_FILE).write_text("{}")


def test_atomic_directory_appears_complete(tmp_path):
    write_checkpoint(tmp_path, 5)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-5"]
    assert (tmp_path / "checkpoint-5" / "weights.bin").read_bytes() == b"w" * 10


def test_exception_leaves_previous_and_no_partial(tmp_path):
    write_checkpoint(tmp_path, 5)
    with (
        pytest.raises(OSError, match="disk full"),
        atomic_directory(str(tmp_path / "checkpoint-10")) as temp,
    ):
        (tmp_path / os.path.basename(temp) / "weights.bin").write_bytes(b"half")
        raise OSError("disk full")
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-5"]
    assert latest_checkpoint(str(tmp_path)).endswith("checkpoint-5")


def test_rewrite_replaces_and_debris_is_removed(tmp_path):
    write_checkpoint(tmp_path, 5)
    (tmp_path / ".tmp-checkpoint-9-123").mkdir()  # left by a process killed mid-save
    (tmp_path / ".trash-checkpoint-1-123").mkdir()  # left by one killed mid-prune
    with atomic_directory(str(tmp_path / "checkpoint-5")) as temp:
        (tmp_path / os.path.basename(temp) / STATE_FILE).write_text('{"new": 1}')
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-5"]
    assert os.listdir(tmp_path / "checkpoint-5") == [STATE_FILE]


def test_list_orders_by_step_and_skips_incomplete(tmp_path):
    for step in (9, 10, 100):
        write_checkpoint(tmp_path, step)
    write_checkpoint(tmp_path, 200, complete=False)  # not written by the trainer
    (tmp_path / "checkpoint-x").mkdir()
    found = [os.path.basename(p) for p in list_checkpoints(str(tmp_path))]
    assert found == ["checkpoint-9", "checkpoint-10", "checkpoint-100"]
    assert latest_checkpoint(str(tmp_path / "missing")) is None


def test_prune_keeps_newest(tmp_path):
    for step in (1, 2, 3, 4):
        write_checkpoint(tmp_path, step)
    deleted = prune_checkpoints(str(tmp_path), keep=2)
    assert [os.path.basename(p) for p in deleted] == ["checkpoint-1", "checkpoint-2"]
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-3", "checkpoint-4"]
