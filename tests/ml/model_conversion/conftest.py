"""Fixtures for the conversion tests: the shipped model templates, built small.

(The model tests have the same helper; test packages here are not importable
from each other, and the helper is five lines.)
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from forgather.config import ConfigEnvironment
from forgather.project.workspace import templatelib_searchdirs

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_template(template: str, output_dir: Path, device: str | None = None, **hyperparameters):
    """Build ``template`` into ``output_dir`` with ``hyperparameters`` set."""
    cfg = ConfigEnvironment(templatelib_searchdirs()).load(template, output_dir=str(output_dir))
    for key, value in hyperparameters.items():
        cfg.set_value(f"model.hyperparameters.{key}", value)
    torch.manual_seed(0)
    return cfg.build("model", device=device).eval()
