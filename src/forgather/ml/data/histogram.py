"""Length statistics and a histogram drawn as a standalone SVG file.

Decision a reader may question: the SVG is written by hand instead of with
matplotlib. A bar chart is thirty lines of markup, and a plotting library would be
a heavy dependency for one picture. Bins are powers of two because document lengths
span four orders of magnitude (a one-line ``__init__.py`` to a 200k-token module);
equal-width bins would put nearly every document in the first bar.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

import numpy as np


def length_summary(lengths: np.ndarray) -> dict[str, float]:
    """Count, total, mean and percentiles of a set of lengths (empty input gives zeros)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0:
        return dict.fromkeys(("count", "total", "mean", "min", "p50", "p90", "p99", "max"), 0)
    p50, p90, p99 = np.percentile(lengths, [50, 90, 99])
    return {
        "count": len(lengths),
        "total": int(lengths.sum()),
        "mean": float(lengths.mean()),
        "min": int(lengths.min()),
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": int(lengths.max()),
    }


def log2_bins(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts per bin [2**k, 2**(k+1)); returns (lower edges, counts) from the shortest
    to the longest non-empty bin (lengths of 0 count in the first bin)."""
    lengths = np.maximum(np.asarray(lengths, dtype=np.int64), 1)
    exponents = np.floor(np.log2(lengths)).astype(np.int64)
    lo, hi = int(exponents.min()), int(exponents.max())
    counts = np.bincount(exponents - lo, minlength=hi - lo + 1)
    edges = 2 ** np.arange(lo, hi + 1, dtype=np.int64)
    return edges, counts


def _label(n: int) -> str:
    return f"{n // 1024}k" if n >= 1024 else str(n)


def write_histogram_svg(
    lengths: np.ndarray,
    path: str | os.PathLike,
    title: str,
    xlabel: str = "tokens per document",
) -> Path:
    """Draw a histogram of ``lengths`` with power-of-two bins and write it as SVG.

    Args:
        lengths: non-negative lengths (at least one).
        path: output file; parent directories are created.
        title: heading drawn above the chart (e.g. split name and summary).
        xlabel: caption of the horizontal axis.

    Returns:
        The path written.
    """
    if len(lengths) == 0:
        raise ValueError("cannot draw a histogram of no lengths")
    edges, counts = log2_bins(lengths)
    width, height = 720, 360
    left, right, top, bottom = 60, 20, 50, 60  # margins in px
    plot_w, plot_h = width - left - right, height - top - bottom
    bar_w = plot_w / len(counts)
    peak = int(counts.max())

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for k in range(5):  # horizontal grid lines with count labels
        value = peak * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#ddd"/>'
        )
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.0f}</text>')
    for i, (edge, count) in enumerate(zip(edges, counts, strict=True)):
        bar_h = plot_h * count / peak
        x = left + i * bar_w
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - bar_h:.1f}" width="{bar_w - 2:.1f}" '
            f'height="{bar_h:.1f}" fill="#4878a8"><title>{edge}-{2 * edge - 1}: {count}</title></rect>'
        )
        parts.append(
            f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle">'
            f"{_label(int(edge))}</text>"
        )
    parts += [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>',
        f'<text x="{left + plot_w / 2}" y="{height - 18}" text-anchor="middle">'
        f"{escape(xlabel)} (bins start at each power of two)</text>",
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">documents</text>',
        "</svg>",
    ]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts) + "\n")
    return out
