"""`plot_run`: loss and learning-rate curves of a run, as a PNG (or SVG) file.

Reads a run's `trainer_logs.json` and draws two stacked panels sharing the step
axis: training loss (with evaluation loss as markers) and learning rate.

The decision a reader may question: PNG goes through matplotlib (imported only
here), while SVG is written by hand — SVG is text, a few polylines and labels,
and needs nothing; ask for it with an output path ending in `.svg`.
"""

from __future__ import annotations

import json
import math
import os
from html import escape

from forgather.ml.checkpoint_layout import LOG_FILE

__all__ = ["plot_run"]

WIDTH, PANEL_HEIGHT = 820, 300  # px
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 30, 40  # margins of each panel, px
COLORS = {"loss": "#1f77b4", "eval_loss": "#d62728", "learning_rate": "#2ca02c"}


def plot_run(run: str, output: str | None = None) -> str:
    """Write the loss and learning-rate curves of a run as PNG or SVG.

    Args:
        run: A run directory holding `trainer_logs.json`, or the JSON file itself.
        output: Path of the image (`.png` or `.svg`); None: `training_curves.png`
            next to the log.

    Returns:
        The path written.

    Raises:
        FileNotFoundError: When there is no log file.
        ValueError: When the log is not JSON or holds no training loss.
    """
    log_path = os.path.join(run, LOG_FILE) if os.path.isdir(run) else run
    with open(log_path, encoding="utf-8") as f:
        try:
            history = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{log_path} is not valid JSON ({e})") from None
    series = {name: _points(history, name) for name in COLORS}
    if not series["loss"]:
        raise ValueError(f"{log_path} has no training loss entries to plot")
    output = output or os.path.join(
        os.path.dirname(os.path.abspath(log_path)), "training_curves.png"
    )
    if not output.endswith(".svg"):
        _plot_png(series, output)
        return output
    all_steps = [s for points in series.values() for s, _ in points]
    x_range = (min(all_steps), max(all_steps))
    panels = [
        _panel(0, "loss", {k: series[k] for k in ("loss", "eval_loss")}, x_range),
        _panel(PANEL_HEIGHT, "learning rate", {"learning_rate": series["learning_rate"]}, x_range),
    ]
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{2 * PANEL_HEIGHT}" '
        f'font-family="sans-serif" font-size="12">\n'
        f'<rect width="100%" height="100%" fill="white"/>\n' + "".join(panels) + "</svg>\n"
    )
    with open(output, "w", encoding="utf-8") as f:
        f.write(svg)
    return output


def _plot_png(series: dict[str, list[tuple[float, float]]], output: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, (loss_ax, lr_ax) = plt.subplots(2, 1, figsize=(8.2, 6.0), sharex=True)
    for name, style in (("loss", "-"), ("eval_loss", "o")):
        if series[name]:
            steps, values = zip(*series[name], strict=True)
            style = "o" if len(steps) == 1 else style  # one point draws no line
            loss_ax.plot(steps, values, style, color=COLORS[name], label=name.replace("_", " "))
    loss_ax.set_ylabel("loss (nats/token)")
    loss_ax.legend()
    loss_ax.grid(alpha=0.3)
    if series["learning_rate"]:
        steps, values = zip(*series["learning_rate"], strict=True)
        lr_ax.plot(steps, values, "o" if len(steps) == 1 else "-", color=COLORS["learning_rate"])
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("step")
    lr_ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)


def _points(history: list[dict], name: str) -> list[tuple[float, float]]:
    """(step, value) of every entry that has a finite `name`."""
    points = []
    for entry in history:
        value = entry.get(name)
        if isinstance(value, int | float) and math.isfinite(value) and "step" in entry:
            points.append((float(entry["step"]), float(value)))
    return points


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values (1, 2 or 5 times a power of ten) covering [low, high].

    >>> nice_ticks(0, 97)
    [0, 20, 40, 60, 80, 100]
    """
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value < high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.1e}"


def _panel(
    top: int,
    title: str,
    series: dict[str, list[tuple[float, float]]],
    x_range: tuple[float, float],
) -> str:
    """One panel: frame, ticks, grid, one polyline (and markers) per series."""
    values = [v for points in series.values() for _, v in points] or [0.0, 1.0]
    x_ticks = nice_ticks(*x_range)
    y_ticks = nice_ticks(min(values), max(values))
    x0, x1 = x_ticks[0], x_ticks[-1]
    y0, y1 = y_ticks[0], y_ticks[-1]
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = PANEL_HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + TOP + plot_h - (y - y0) / (y1 - y0) * plot_h

    out = [f'<text x="{LEFT}" y="{top + 20}" font-weight="bold">{escape(title)}</text>\n']
    for x in x_ticks:
        out.append(
            f'<line x1="{px(x):.1f}" y1="{py(y0):.1f}" x2="{px(x):.1f}" y2="{py(y1):.1f}" '
            f'stroke="#eee"/><text x="{px(x):.1f}" y="{py(y0) + 16:.1f}" '
            f'text-anchor="middle">{_label(x)}</text>\n'
        )
    for y in y_ticks:
        out.append(
            f'<line x1="{px(x0):.1f}" y1="{py(y):.1f}" x2="{px(x1):.1f}" y2="{py(y):.1f}" '
            f'stroke="#eee"/><text x="{LEFT - 6}" y="{py(y) + 4:.1f}" '
            f'text-anchor="end">{_label(y)}</text>\n'
        )
    out.append(
        f'<rect x="{LEFT}" y="{top + TOP}" width="{plot_w}" height="{plot_h}" '
        f'fill="none" stroke="#333"/>\n'
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{top + PANEL_HEIGHT - 6}" '
        f'text-anchor="middle">step</text>\n'
    )
    legend_x = LEFT + plot_w - 10
    for i, (name, points) in enumerate(series.items()):
        if not points:
            continue
        color = COLORS[name]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        out.append(
            f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="1.5"/>\n'
        )
        if name == "eval_loss" or len(points) == 1:  # one point draws no line
            out.extend(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>\n'
                for x, y in points
            )
        out.append(
            f'<text x="{legend_x}" y="{top + TOP + 16 + 16 * i}" text-anchor="end" '
            f'fill="{color}">{escape(name)}</text>\n'
        )
    return "".join(out)
