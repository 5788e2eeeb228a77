"""Where runs and checkpoints live on disk, and which checkpoint fits a model (no torch).

    output_models/<name>/                    the model directory (config.json, code, tokenizer)
    ├── model.safetensors                    final weights, or a link made by `checkpoint link`
    └── runs/<run>/                          one training run (logs, config; `forgather train`)
        └── checkpoints/checkpoint-<step>/
            ├── model.safetensors            weights (or model.safetensors.index.json + shards)
            ├── optimizer.pt, scheduler.pt   optimizer and learning-rate schedule states
            ├── rng_state.pt                 generator states  } one per rank in a multi-process
            ├── dataloader_state.pt          data position     } job: rng_state-<rank>.pt, ...
            ├── distributed.json             a multi-process job's layout, which a resume must match
            ├── linked_by.json               present while the model directory's link points here
            └── trainer_state.json           written last: the trainer's mark of a complete checkpoint

Pipeline and sharded FSDP checkpoints keep their weights and optimizer
states in their own files instead (``stage-<i>/``, ``sharded/``; see
``forgather.ml.trainer.parallel``).

The trainers (``forgather.ml.trainer``), the training script's resume, the CLI
(``forgather checkpoint``) and the server (``forgather inf server -c``) all
name, find, order and check checkpoints here. A "newest" checkpoint is the one
with the highest step, ties broken by modification time; the run a resume
continues is the most recently started one with a complete checkpoint.

Decision a reader may question: whether a checkpoint fits a model is decided
from the safetensors *header* (tensor names and shapes, a few kilobytes read
with ``json``), compared with the names and shapes the model has (the caller
supplies them, e.g. from a model built on torch's meta device), so choosing
among checkpoints never loads their weights, and listing needs no torch.
This module is not under ``forgather.ml.trainer`` so that the CLI reads the
layout without importing anything of the trainers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

RUNS_DIR = "runs"  # <model_dir>/runs/<run>/
CHECKPOINTS_DIR = "checkpoints"  # <run>/checkpoints/checkpoint-<step>/
MODEL_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
STATE_FILE = "trainer_state.json"
LOG_FILE = "trainer_logs.json"  # <run>/trainer_logs.json: what makes a directory a run
LINK_MARK = "linked_by.json"
# What else the trainers write into a checkpoint (loaded with torch.load(weights_only=True)).
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
RNG_FILE = "rng_state.pt"
DATALOADER_FILE = "dataloader_state.pt"
DISTRIBUTED_FILE = "distributed.json"  # the process layout a multi-process checkpoint needs
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_MAX_HEADER = 100 * 2**20  # bytes; a larger "header" means the file is not safetensors

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ModelTensors:
    """The tensors a model's state dict holds.

    Attributes:
        shapes: name -> shape of every tensor in the state dict.
        tied: groups of names sharing one tensor; a file may store one name of a group.
    """

    shapes: Mapping[str, Shape]
    tied: tuple[frozenset[str], ...] = ()


@dataclass(frozen=True)
class Checkpoint:
    """A ``checkpoint-<step>`` directory."""

    path: str
    step: int

    @property
    def is_complete(self) -> bool:
        """The trainer finished writing it (``trainer_state.json``): training can resume from it."""
        return os.path.isfile(os.path.join(self.path, STATE_FILE))

    @property
    def has_weights(self) -> bool:
        """Holds ``model.safetensors`` (or its sharded index)."""
        return any(os.path.exists(os.path.join(self.path, f)) for f in (MODEL_FILE, INDEX_FILE))


# -- naming and finding checkpoints ---------------------------------------------------------


def checkpoint_path(checkpoints_dir: str, step: int) -> str:
    """Where the trainer writes the checkpoint of optimizer step ``step``."""
    return os.path.join(checkpoints_dir, f"checkpoint-{step}")


def rank_file(name: str, rank: int) -> str:
    """The file of one rank of a multi-process job: ``rng_state.pt`` -> ``rng_state-<rank>.pt``."""
    stem, ext = os.path.splitext(name)
    return f"{stem}-{rank}{ext}"


def list_checkpoints(checkpoints_dir: str) -> list[str]:
    """The trainer's complete checkpoints in ``checkpoints_dir``, oldest (lowest step) first."""
    if not os.path.isdir(checkpoints_dir):
        return []
    found = []
    for entry in os.listdir(checkpoints_dir):
        match = _CHECKPOINT_RE.match(entry)
        path = os.path.join(checkpoints_dir, entry)
        if match and os.path.isfile(os.path.join(path, STATE_FILE)):
            found.append((int(match.group(1)), path))
    return [path for _step, path in sorted(found)]


def latest_checkpoint(checkpoints_dir: str) -> str | None:
    """The complete checkpoint with the highest step in ``checkpoints_dir``, or None."""
    checkpoints = list_checkpoints(checkpoints_dir)
    return checkpoints[-1] if checkpoints else None


def find_checkpoints(model_dir: str) -> list[Checkpoint]:
    """Every ``checkpoint-<step>`` below ``model_dir`` (any run, any depth), newest first.

    Newest means the highest step (what a user reads in the training log), ties
    broken by modification time (which copying changes). A directory counts when
    it holds weights or the trainer's state; hidden directories (a save or a
    prune in progress) are skipped.
    """
    found = []
    for root, dirs, _files in os.walk(model_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in list(dirs):
            match = _CHECKPOINT_RE.match(name)
            if not match:
                continue
            dirs.remove(name)  # nothing to find inside a checkpoint
            checkpoint = Checkpoint(os.path.join(root, name), int(match.group(1)))
            if checkpoint.has_weights or checkpoint.is_complete:
                found.append((checkpoint.step, os.path.getmtime(checkpoint.path), checkpoint))
    return [c for _step, _mtime, c in sorted(found, key=lambda t: t[:2], reverse=True)]


def run_to_resume(model_dir: str) -> str | None:
    """The run directory (``<model_dir>/runs/<run>``) a resume continues: the most recently
    started run that holds a complete checkpoint.

    A run's start is the time ``forgather train`` puts at the end of its name
    (``<name>_YYYY-MM-DDTHH-MM-SS``), else its directory's modification time.
    Not the run with the highest step: after a finished run, a newer run stopped
    early is what ``--resume`` means to continue (see :func:`resumable_runs`).
    None when no run has a complete checkpoint.
    """
    runs = resumable_runs(model_dir)
    return max(runs, key=run_start) if runs else None


def resumable_runs(model_dir: str) -> dict[str, Checkpoint]:
    """Each run of ``model_dir`` with a complete checkpoint, with its newest (highest step)."""
    runs_dir = os.path.join(model_dir, RUNS_DIR)
    found: dict[str, Checkpoint] = {}
    for checkpoint in find_checkpoints(runs_dir):  # newest first
        checkpoints_dir = os.path.dirname(checkpoint.path)
        run = os.path.dirname(checkpoints_dir)
        if (
            checkpoint.is_complete
            and os.path.basename(checkpoints_dir) == CHECKPOINTS_DIR
            and os.path.dirname(run) == runs_dir
        ):
            found.setdefault(run, checkpoint)
    return found


_RUN_TIME_RE = re.compile(r"_(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d)$")


def run_start(run: str) -> tuple[int, str]:
    """Sort key of a run directory by when it started: the time in its name, else its mtime."""
    match = _RUN_TIME_RE.search(os.path.basename(run))
    if match:  # the name's own time survives copying; compared as text (same format)
        return 1, match.group(1)
    return 0, f"{os.path.getmtime(run):020.6f}"


# -- what a checkpoint holds --------------------------------------------------------------


def read_safetensors_header(path: str) -> dict[str, tuple[str, Shape]]:
    """name -> (dtype, shape) of every tensor in a safetensors file, read from its header only.

    Raises:
        ValueError: ``path`` is not a safetensors file.
    """
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if not 0 < size <= _MAX_HEADER:
            raise ValueError(f"{path} is not a safetensors file (header size {size})")
        try:
            header = json.loads(f.read(size))
        except ValueError as err:
            raise ValueError(f"{path} is not a safetensors file: {err}") from None
    header.pop("__metadata__", None)
    return {name: (info["dtype"], tuple(info["shape"])) for name, info in header.items()}


def checkpoint_tensors(directory: str) -> dict[str, tuple[str, Shape]]:
    """name -> (dtype, shape) of the weights in ``directory`` (one file or an index of shards).

    Raises:
        FileNotFoundError: ``directory`` holds neither ``model.safetensors`` nor its index.
        ValueError: a file is not safetensors.
    """
    index = os.path.join(directory, INDEX_FILE)
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    else:
        shards = [MODEL_FILE]
    tensors: dict[str, tuple[str, Shape]] = {}
    for shard in shards:
        tensors.update(read_safetensors_header(os.path.join(directory, shard)))
    return tensors


def fit_problem(found: Mapping[str, Shape], model: ModelTensors) -> str | None:
    """Why weights with these names and shapes do not fit ``model``; None when they do."""

    def listed(names: list[str]) -> str:
        return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")

    wrong = [n for n in found if n in model.shapes and tuple(found[n]) != tuple(model.shapes[n])]
    if wrong:
        name = wrong[0]
        more = f" ({len(wrong) - 1} more tensors differ)" if len(wrong) > 1 else ""
        return (
            f"{name} has shape {list(found[name])} there but {list(model.shapes[name])} "
            f"in the model{more}"
        )
    group_of = {name: group for group in model.tied for name in group}
    missing = sorted(
        n for n in model.shapes if n not in found and not (group_of.get(n, set()) & found.keys())
    )
    if missing:
        return f"it lacks {len(missing)} of the model's tensors: {listed(missing)}"
    unexpected = sorted(set(found) - set(model.shapes))
    if unexpected:
        return f"it has {len(unexpected)} tensors the model does not: {listed(unexpected)}"
    return None


def newest_fitting(
    checkpoints: Iterable[Checkpoint],
    model: ModelTensors | None,
    skipped: Callable[[Checkpoint, str], None] = lambda checkpoint, why: None,
) -> Checkpoint | None:
    """The first checkpoint (of newest-first ``checkpoints``) whose weights fit ``model``.

    Args:
        checkpoints: e.g. :func:`find_checkpoints`.
        model: the model's tensors; None: any checkpoint with readable weights fits.
        skipped: called with each checkpoint passed over and the reason.
    """
    for checkpoint in checkpoints:
        if not checkpoint.has_weights:
            skipped(checkpoint, f"no {MODEL_FILE} in it (a sharded or pipeline checkpoint?)")
            continue
        try:
            tensors = checkpoint_tensors(checkpoint.path)
        except (OSError, ValueError, KeyError) as err:
            skipped(checkpoint, f"its weights cannot be read: {err}")
            continue
        shapes = {name: shape for name, (_dtype, shape) in tensors.items()}
        problem = fit_problem(shapes, model) if model is not None else None
        if problem:
            skipped(checkpoint, f"its weights do not fit the model: {problem}")
            continue
        return checkpoint
    return None


# -- the model directory's link --------------------------------------------------------------


def mark_linked(checkpoint_dir: str, link: str) -> None:
    """Record in ``checkpoint_dir`` that ``link`` points at its weights (pruning keeps it)."""
    mark = os.path.join(checkpoint_dir, LINK_MARK)
    temp = mark + ".tmp"
    with open(temp, "w", encoding="utf-8") as f:
        # Relative, so that the mark stays true when the model directory is moved.
        json.dump({"link": os.path.relpath(link, checkpoint_dir)}, f)
    os.replace(temp, mark)


def unmark_linked(checkpoint_dir: str) -> None:
    """Forget a :func:`mark_linked` (the link now points elsewhere)."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(os.path.join(checkpoint_dir, LINK_MARK))


def is_linked(checkpoint_dir: str) -> bool:
    """Does the link recorded in ``checkpoint_dir`` still point at its weights?

    A mark whose link was removed or now points elsewhere is stale and does not count.
    """
    return linked_as(checkpoint_dir) is not None


def linked_as(checkpoint_dir: str) -> str | None:
    """The link (recorded in ``checkpoint_dir``) that points at its weights, or None."""
    try:
        with open(os.path.join(checkpoint_dir, LINK_MARK), encoding="utf-8") as f:
            link = os.path.normpath(os.path.join(checkpoint_dir, json.load(f)["link"]))
        if os.path.islink(link) and os.path.samefile(
            link, os.path.join(checkpoint_dir, MODEL_FILE)
        ):
            return link
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None
