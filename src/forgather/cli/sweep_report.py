"""A sweep's results: the summary table (printed and CSV) and the metric plotted against each swept value.

    rows = summary_rows(manifest.trials, names, metric="eval_loss", mode="min", reduce="last")
    print(format_table(rows, names, "eval_loss"))
    write_csv(rows, names, "eval_loss", sweep_dir / "summary.csv")
    plot_metric(rows, dims, "eval_loss", sweep_dir / "sweep_eval_loss.png")

Each row's ``score`` is the trial's metric: its last logged value
(``reduce="last"``) or its best (``"best"``: the least for ``mode="min"``, the
greatest for ``"max"``). The best score among the finished trials is marked.

Decision a reader may question: the plot is one panel per swept name with
every finished trial as a point (the other names vary along it) and a line
through the best score at each value: a scatter shows how much the other
names matter, which an average would hide. It needs matplotlib (imported
here only); without it the plot is skipped and the table still written.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgather.cli.sweep_manifest import FINISHED, TrialRecord
from forgather.cli.sweep_space import format_value


@dataclass
class Row:
    """One line of the summary: a trial and its score (None: not finished or never logged)."""

    trial: TrialRecord
    score: float | None
    last: float | None
    best: float | None
    step: int | None
    is_best: bool = False


def summary_rows(trials: list[TrialRecord], metric: str, mode: str, reduce: str) -> list[Row]:
    """A row per trial, in trial order, the best finished one marked.

    Args:
        trials: the manifest's trials.
        metric: the logged key (``eval_loss``).
        mode: ``"min"`` or ``"max"``: which scores are better.
        reduce: ``"last"`` or ``"best"``: which logged value is the trial's score.
    """
    rows = []
    for trial in trials:
        summary = trial.metrics.get(metric)
        last = best = step = None
        if summary:
            last, step = summary["last"], summary.get("step")
            best = summary["best_min"] if mode == "min" else summary["best_max"]
        score = last if reduce == "last" else best
        rows.append(Row(trial, score, last, best, step))
    finished = [r for r in rows if r.trial.status == FINISHED and _is_number(r.score)]
    if finished:
        pick = min if mode == "min" else max
        pick(finished, key=lambda r: r.score).is_best = True
    return rows


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.5g}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f}s" if seconds < 600 else f"{seconds / 60:.1f}m"


def short_names(names: list[str]) -> list[str]:
    """Column titles: the shortest dotted suffix of each name that no other name ends with.

    >>> short_names(["main.args.learning_rate", "lr", "model.args.lr"])
    ['learning_rate', 'lr', 'args.lr']
    """
    out = []
    for name in names:
        parts = name.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if not any(o != name and (o == suffix or o.endswith("." + suffix)) for o in names):
                break
        out.append(suffix)
    return out


def format_table(rows: list[Row], names: list[str], metric: str) -> str:
    """The summary as aligned text columns (swept paths shortened); ``*`` marks the best trial."""
    header = ["trial", "status", *short_names(names), metric, "step", "time"]
    lines = [header]
    for row in rows:
        t = row.trial
        values = [format_value(t.values[n]) if n in t.values else "-" for n in names]
        status = t.status + (" *" if row.is_best else "")
        lines.append([t.name, status, *values, _number(row.score),
                      "-" if row.step is None else str(row.step), _duration(t.wall_time_s)])  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)  # fmt: skip


def write_csv(rows: list[Row], names: list[str], metric: str, path: Path) -> None:
    """The summary as CSV: one row per trial, swept values as command-line text."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["trial", "status", *names, metric, f"{metric}_last", f"{metric}_best",
                         "step", "wall_time_s", "returncode", "run_dir", "best"])  # fmt: skip
        for row in rows:
            t = row.trial
            writer.writerow([
                t.name, t.status, *(format_value(t.values[n]) if n in t.values else "" for n in names),
                _csv(row.score), _csv(row.last), _csv(row.best), _csv(row.step),
                _csv(None if t.wall_time_s is None else round(t.wall_time_s, 2)),
                _csv(t.returncode), t.run_dir or "", "*" if row.is_best else "",
            ])  # fmt: skip


def _csv(value: Any) -> str:
    return "" if value is None else str(value)


def plot_metric(rows: list[Row], dims: list[dict[str, Any]], metric: str, mode: str,
                path: Path) -> str | None:  # fmt: skip
    """Draw the metric against each swept name; return the path, or why nothing was drawn.

    Args:
        rows: the summary rows (only finished trials with a score are drawn).
        dims: ``{"name", "log"}`` per swept name (``log``: a log-scale axis).
        metric: the y-axis label.
        mode: ``"min"`` or ``"max"``: the line joins the best score at each value.
        path: the image (``.png``, ``.svg`` or ``.pdf``: matplotlib's formats).

    Returns:
        ``None`` when written, else the reason it was not (no scores, no matplotlib).
    """
    points = [r for r in rows if r.trial.status == FINISHED and _is_number(r.score)]
    if not points:
        return f"no finished trial logged {metric}"
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims), 3.6), squeeze=False,
                             sharey=True)  # fmt: skip
    for ax, dim in zip(axes[0], dims, strict=True):
        _panel(ax, [r for r in points if dim["name"] in r.trial.values], dim, mode)
        ax.set_xlabel(dim["name"])
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(metric)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return None


def _panel(ax: Any, rows: list[Row], dim: dict[str, Any], mode: str) -> None:
    name = dim["name"]
    xs = [r.trial.values[name] for r in rows]
    numeric = all(_is_number(x) and not isinstance(x, bool) for x in xs)
    if not numeric:  # categories, in order of first appearance
        labels = list(dict.fromkeys(format_value(x) for x in xs))
        xs = [labels.index(format_value(x)) for x in xs]
        ax.set_xticks(range(len(labels)), labels)
    scores = [r.score for r in rows]
    ax.scatter(xs, scores, color="#1f77b4", zorder=3)
    best: dict[Any, float] = {}
    for x, y in zip(xs, scores, strict=True):
        best[x] = y if x not in best else (min if mode == "min" else max)(best[x], y)
    line = sorted(best.items())
    if len(line) > 1:
        ax.plot([x for x, _ in line], [y for _, y in line], color="#d62728", alpha=0.7)
    marked = [r for r in rows if r.is_best]
    if marked:
        i = rows.index(marked[0])
        ax.scatter([xs[i]], [scores[i]], marker="*", s=160, color="#d62728", zorder=4)
    if not numeric:
        return
    distinct = sorted(set(xs))
    if min(xs) > 0 and (dim.get("log") or max(xs) >= 10 * min(xs)):  # a decade or more apart
        ax.set_xscale("log")
    if len(distinct) <= 8:  # a grid: tick its values
        ax.set_xticks(distinct, [format_value(x) for x in distinct])
        ax.minorticks_off()
