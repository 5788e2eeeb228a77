"""A sweep's record on disk: ``<sweep_dir>/sweep.json``, and each trial's metric from its logs.

    manifest = Manifest.open(sweep_dir, base)     # a new sweep, or the one already there
    trial = manifest.trial_for(values, words)     # the trial with these assignments (new or recorded)
    manifest.save()                               # atomically: a reader never sees half a file
    read_metric(trial_dir, "eval_loss")           # last and best value from trainer_logs.json

Trial statuses: ``pending`` (planned), ``running``, ``done`` (exit 0, not
stopped early), ``failed`` (non-zero exit), ``interrupted`` (stopped by a
signal or Ctrl-C). Only ``done`` trials are finished; a resumed sweep runs
every other trial again from scratch.

Decision a reader may question: ``base`` (project, config, fixed ``-D``/
``--set`` words, train options) must match the recorded sweep exactly, while
the set of trials may grow: results from another base are not comparable,
but a grid extended by one value should reuse the trials it already has.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forgather.cli.errors import CLIError
from forgather.ml.checkpoint_layout import LOG_FILE

MANIFEST = "sweep.json"
FORMAT = 1
FINISHED = "done"


@dataclass
class TrialRecord:
    """One trial: what it runs and how it went.

    Attributes:
        id: its number in the sweep; its directory is ``trial-<id>`` (3 digits).
        values: swept name -> value.
        words: the ``-D``/``--set`` command-line words that give those values.
        status: ``pending``, ``running``, ``done``, ``failed`` or ``interrupted``.
        command: the full command line of its last run.
        returncode: the exit code of its last run.
        started, finished: ``time.time()`` of its last run.
        wall_time_s: seconds the last run took.
        run_dir: the run directory holding its ``trainer_logs.json``.
        metrics: metric name -> ``{"last", "best_min", "best_max", "step"}`` read at its end.
        error: why it failed, in one line.
    """

    id: int
    values: dict[str, Any]
    words: list[str]
    status: str = "pending"
    command: list[str] = field(default_factory=list)
    returncode: int | None = None
    started: float | None = None
    finished: float | None = None
    wall_time_s: float | None = None
    run_dir: str | None = None
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: str | None = None

    @property
    def name(self) -> str:
        return f"trial-{self.id:03d}"

    @property
    def key(self) -> tuple[str, ...]:
        return trial_key(self.words)


def trial_key(words: list[str]) -> tuple[str, ...]:
    """The identity of a trial: its assignments as ``FLAG NAME=VALUE`` strings, sorted."""
    return tuple(sorted(f"{words[i]} {words[i + 1]}" for i in range(0, len(words), 2)))


class Manifest:
    """``sweep.json`` of one sweep directory.

    Args:
        sweep_dir: the directory.
        base: what every trial shares; compared with the recorded one.
        data: the recorded manifest (``None`` for a new sweep).
    """

    def __init__(self, sweep_dir: Path, base: dict[str, Any], data: dict[str, Any] | None = None):
        self.sweep_dir = Path(sweep_dir)
        self.base = base
        data = data or {}
        self.created = data.get("created") or time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.settings: dict[str, Any] = data.get("settings", {})
        self.dimensions: list[dict[str, Any]] = data.get("dimensions", [])
        fields = set(TrialRecord.__dataclass_fields__)
        self.trials = [TrialRecord(**{k: v for k, v in t.items() if k in fields})
                       for t in data.get("trials", [])]  # fmt: skip

    @classmethod
    def open(cls, sweep_dir: Path, base: dict[str, Any]) -> Manifest:
        """The sweep recorded in ``sweep_dir``, or a new one.

        Raises:
            CLIError: the directory holds a sweep with another base.
        """
        path = Path(sweep_dir) / MANIFEST
        if not path.exists():
            return cls(sweep_dir, base)
        data = load(sweep_dir)
        recorded = data.get("base", {})
        if recorded != base:
            differ = ", ".join(
                f"{k}: {recorded.get(k)!r} then, {base.get(k)!r} now"
                for k in sorted(set(recorded) | set(base))
                if recorded.get(k) != base.get(k)
            )
            raise CLIError(
                f"{sweep_dir} holds another sweep ({differ}); "
                "give the same options to resume it, or another --sweep-dir"
            )
        return cls(sweep_dir, base, data)

    def trial_for(self, values: dict[str, Any], words: list[str]) -> TrialRecord:
        """The recorded trial with these assignments, or a new pending one."""
        key = trial_key(words)
        for trial in self.trials:
            if trial.key == key:
                return trial
        trial = TrialRecord(id=len(self.trials), values=dict(values), words=list(words))
        self.trials.append(trial)
        return trial

    def trial_dir(self, trial: TrialRecord) -> Path:
        return self.sweep_dir / trial.name

    def add_dimensions(self, dims: list[dict[str, Any]]) -> None:
        """Record the dimensions (name, kind, spec) of this invocation: a new spec replaces
        the one recorded for the same name (a grid that grew), other names are kept."""
        given = {(d["name"], d["kind"]): d for d in dims}
        kept = [d for d in self.dimensions if (d["name"], d["kind"]) not in given]
        self.dimensions = kept + list(given.values())

    def save(self) -> None:
        """Write ``sweep.json`` atomically (a temporary file renamed over it), if it changed."""
        data = {
            "format": FORMAT,
            "created": self.created,
            "base": self.base,
            "settings": self.settings,
            "dimensions": self.dimensions,
            "trials": [{"name": t.name, **asdict(t)} for t in self.trials],
        }
        text = json.dumps(data, indent=1, default=str) + "\n"
        path = self.sweep_dir / MANIFEST
        if path.exists() and path.read_text(encoding="utf-8") == text:
            return  # unchanged: its time still says when the sweep last changed
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sweep.", suffix=".json", dir=self.sweep_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.sweep_dir / MANIFEST)


def load(sweep_dir: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``sweep.json`` of ``sweep_dir``.

    Raises:
        CLIError: no manifest there, or one this version cannot read.
    """
    path = Path(sweep_dir) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CLIError(f"{sweep_dir} is not a sweep directory (no {MANIFEST})") from None
    except json.JSONDecodeError as err:
        raise CLIError(f"{path} is not valid JSON: {err}") from None
    if data.get("format") != FORMAT:
        raise CLIError(f"{path} has format {data.get('format')!r}; this Forgather reads {FORMAT}")
    return data


def find_log(trial_dir: Path) -> Path | None:
    """The newest ``trainer_logs.json`` below ``trial_dir`` (``runs/<run>/``), or None."""
    logs = [p for p in Path(trial_dir).glob(f"**/{LOG_FILE}") if p.is_file()]
    return max(logs, key=lambda p: p.stat().st_mtime) if logs else None


def read_log(path: Path) -> list[dict[str, Any]]:
    """The entries of a ``trainer_logs.json`` (``[]`` when it cannot be read)."""
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def metric_summary(entries: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The last and best values of ``metric`` in log ``entries`` (None when never logged).

    Returns:
        ``{"last": v, "step": s, "best_min": v, "best_max": v}``: the value of
        the last entry holding it, that entry's step, the least and greatest.
    """
    points = [(e.get("step"), e[metric]) for e in entries
              if isinstance(e.get(metric), int | float) and not isinstance(e.get(metric), bool)]  # fmt: skip
    if not points:
        return None
    values = [v for _, v in points]
    return {"last": values[-1], "step": points[-1][0], "best_min": min(values),
            "best_max": max(values)}  # fmt: skip


def logged_metrics(entries: list[dict[str, Any]]) -> list[str]:
    """The numeric keys logged in ``entries`` (for "no such metric" messages), sorted."""
    names = {k for e in entries for k, v in e.items() if isinstance(v, int | float)}
    return sorted(names - {"step", "epoch"})


def stopped_early(entries: list[dict[str, Any]]) -> str | None:
    """The signal that stopped the run (its last summary's ``stopped_by``), or None.

    Only the last summary counts: a run resumed after a stop and then finished
    keeps the first part's summary earlier in its log.
    """
    for entry in reversed(entries):
        if "stopped_by" in entry:
            return str(entry["stopped_by"])
        if "train_runtime" in entry:
            return None
    return None
