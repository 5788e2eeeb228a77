"""Which directories a template search never enters (shared by the loader and the
render caches, without importing Jinja2)."""

from __future__ import annotations

SKIP_DIRS = frozenset({"__pycache__", "node_modules", "output_models"})


def skipped_dir(name: str) -> bool:
    """Whether a directory of this name is never searched for templates: hidden ones,
    caches, ``node_modules`` and training output (``output_models``)."""
    return name.startswith(".") or name in SKIP_DIRS
