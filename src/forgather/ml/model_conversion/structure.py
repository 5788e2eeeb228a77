"""Print a model's module tree with parameter counts, folding repeated layers.

Decision a reader may question: identical consecutive children of a
``ModuleList`` are printed once as ``0-3: 4 x PreLNLayer`` (as PyTorch's own
repr does), and counts are of unique parameters, so a tied head is not
counted twice and a 32-layer model fits on one screen.
"""

from __future__ import annotations

import sys
from typing import TextIO

from torch import nn


def format_count(n: int) -> str:
    """``4_456_448`` -> ``'4.46M'``."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def count_parameters(module: nn.Module) -> int:
    """Unique parameters of ``module`` (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def _label(module: nn.Module) -> str:
    extra = module.extra_repr()
    return (
        f"{type(module).__name__}({extra})"
        if extra and "\n" not in extra
        else type(module).__name__
    )


def _groups(module: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """(name, first child, repeat count), folding identical runs in a ModuleList."""
    children = list(module.named_children())
    if not isinstance(module, nn.ModuleList):
        return [(name, child, 1) for name, child in children]
    groups: list[tuple[str, nn.Module, int]] = []
    for name, child in children:
        if groups and repr(groups[-1][1]) == repr(child):
            first, sample, count = groups[-1]
            groups[-1] = (first, sample, count + 1)
        else:
            groups.append((name, child, 1))
    return groups


def model_structure(model: nn.Module, max_depth: int = 4) -> str:
    """The tree as text (see :func:`print_model_structure`)."""
    lines = [f"{type(model).__name__}  {format_count(count_parameters(model))} parameters"]

    def walk(module: nn.Module, prefix: str, depth: int) -> None:
        groups = _groups(module)
        for i, (name, child, count) in enumerate(groups):
            last = i == len(groups) - 1
            label = _label(child)
            params = count_parameters(child)
            if count > 1:
                end = int(name) + count - 1
                name, label = f"{name}-{end}", f"{count} x {label}"
                params *= count
            shown = f"  {format_count(params)}" if params else ""
            lines.append(f"{prefix}{'└─ ' if last else '├─ '}{name}: {label}{shown}")
            if depth < max_depth:
                walk(child, prefix + ("   " if last else "│  "), depth + 1)

    walk(model, "", 1)
    return "\n".join(lines)


def print_model_structure(model: nn.Module, max_depth: int = 4, file: TextIO | None = None) -> str:
    """Print ``model``'s modules to ``max_depth`` levels with parameter counts.

    Args:
        model: Any ``nn.Module``.
        max_depth: Levels below the root to show.
        file: Where to print; default stdout.

    Returns:
        The printed text.
    """
    text = model_structure(model, max_depth)
    print(text, file=file or sys.stdout)
    return text
