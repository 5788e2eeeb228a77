"""Pipeline checkpoints on disk: per-stage weights, and merging them into one model.

A `PipelineTrainer` checkpoint holds `stage-<i>/model.safetensors` for every
stage, with the unsplit model's parameter names, so merging is a union:

    from forgather.ml.trainer import merge_pipeline_checkpoint
    merge_pipeline_checkpoint("output_models/m/runs/r/checkpoints/checkpoint-500",
                              "output_models/m")   # writes output_models/m/model.safetensors

The decision a reader may question: the merged file holds exactly the
union of the stage files, with no renaming and no check against a model,
so merging needs neither the model's code nor a process group; whether the
stages together hold every weight is checked when the file is loaded
(strictly), e.g. by `PipelineTrainer.save_model`.
"""

from __future__ import annotations

import glob
import os
import re

from safetensors.torch import load_file, save_file

from forgather.ml import checkpoint_layout as layout
from forgather.ml.file_modes import share_weights

from .pipeline_split import merge_stage_weights

__all__ = ["merge_pipeline_checkpoint", "stage_dir"]

_STAGE_RE = re.compile(r"stage-(\d+)$")


def stage_dir(checkpoint_dir: str, stage: int) -> str:
    """`<checkpoint>/stage-<i>`, two digits so the stages sort in order."""
    return os.path.join(checkpoint_dir, f"stage-{stage:02d}")


def merge_pipeline_checkpoint(checkpoint_dir: str, output_dir: str | None = None) -> str:
    """Merge a pipeline checkpoint's stage weights into one `model.safetensors`.

    Args:
        checkpoint_dir: A `checkpoint-<step>` written by `PipelineTrainer`.
        output_dir: Where to write `model.safetensors` (e.g. the generated model
            directory, which holds the config and code); default the checkpoint itself.

    Returns:
        The path of the file written.

    Raises:
        FileNotFoundError: If the directory holds no stage weights.
    """
    stages = sorted(
        (int(m.group(1)), path)
        for path in glob.glob(os.path.join(checkpoint_dir, "stage-*"))
        if (m := _STAGE_RE.search(path))
    )
    if not stages:
        raise FileNotFoundError(f"no stage-*/ directories in {checkpoint_dir}")
    if [s for s, _ in stages] != list(range(len(stages))):
        raise FileNotFoundError(
            f"stages {[s for s, _ in stages]} in {checkpoint_dir} are not 0..n-1"
        )
    weights = merge_stage_weights(
        [load_file(os.path.join(p, layout.MODEL_FILE)) for _, p in stages]
    )
    output_dir = output_dir or checkpoint_dir
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, layout.MODEL_FILE)
    save_file(weights, path, metadata={"format": "pt"})
    share_weights(path)
    return path
