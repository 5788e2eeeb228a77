"""``forgather sweep``: train a config over a grid or a random sample of ``-D``/``--set`` values.

    forgather -t train_tiny_llama.yaml sweep \\
        --set-grid main.args.learning_rate=1e-3,3e-3 --set-grid main.args.per_device_train_batch_size=4,8 \\
        -- --max-steps 20
    forgather -t cfg.yaml sweep --grid 'lr=loguniform(1e-4,1e-2)' --random 8 --seed 1 --parallel 2
    forgather -t cfg.yaml sweep --grid 'lr=loguniform(1e-4,1e-2)' --optuna 20 --metric eval_loss
    forgather sweep --sweep-dir output_models/sweeps/cfg-1a2b3c4d     # resume that sweep as recorded
    forgather sweep --sweep-dir output_models/sweeps/cfg-1a2b3c4d --report --metric loss

Every trial is ``forgather -p PROJECT -t CONFIG [-D/--set ...] -D output_dir=TRIAL_DIR
train [TRAIN OPTIONS]`` in a subprocess; the space, the manifest, the runner
and the report are :mod:`forgather.cli.sweep_space`, ``sweep_manifest``,
``sweep_runner`` and ``sweep_report``.

Decision a reader may question: without ``--sweep-dir`` the sweep directory is
``<project>/output_models/sweeps/<config>-<hash>``, the hash of what defines
the trials (config, fixed options, swept names and values, search and seed,
not the number of random trials). Running the same command again therefore
resumes it, skipping finished trials, and a different sweep never lands in
its directory; asking for more random or Optuna trials continues the same one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgather.cli.command import Command
from forgather.cli.context import CommandContext, find_project_dir
from forgather.cli.errors import CLIError, UsageError
from forgather.cli.sweep_manifest import FINISHED, MANIFEST, Manifest, TrialRecord, load
from forgather.cli.sweep_space import (
    Dimension,
    assignment,
    format_value,
    grid_trials,
    parse_dimension,
    random_trials,
)

DEFAULT_METRICS = ("eval_loss", "loss")  # without --metric: the first one a trial logged


def _arguments(parser: argparse.ArgumentParser) -> None:
    space = parser.add_argument_group("what to sweep")
    space.add_argument("--grid", action="append", default=[], metavar="NAME=VALUES",
                       help="a template variable (-D) and its values: lr=1e-3,3e-3; "
                            "linspace(a,b,n), logspace(a,b,n); with --random/--optuna also "
                            "uniform(a,b), loguniform(a,b), int(a,b), logint(a,b)")  # fmt: skip
    space.add_argument("--set-grid", action="append", default=[], metavar="PATH=VALUES",
                       help="a config value (--set) and its values, as --grid: "
                            "main.args.weight_decay=0,0.1")  # fmt: skip
    search = space.add_mutually_exclusive_group()
    search.add_argument("--random", type=int, metavar="N",
                        help="N trials sampled from the space (default: every grid combination)")  # fmt: skip
    search.add_argument("--optuna", type=int, metavar="N",
                        help="N trials chosen by Optuna's TPE sampler (needs: pip install optuna)")  # fmt: skip
    space.add_argument("--seed", type=int, default=0, help="seed of --random and --optuna (0)")
    result = parser.add_argument_group("what to compare")
    result.add_argument(
        "--metric", help="the logged value to compare (default: eval_loss, else loss)"
    )
    result.add_argument(
        "--mode", choices=("min", "max"), default="min", help="better is lower (min) or higher"
    )
    result.add_argument("--reduce", choices=("last", "best"), default="last",
                        help="a trial's score: its last logged value, or its best (last)")  # fmt: skip
    run = parser.add_argument_group("how to run")
    run.add_argument(
        "--parallel", type=int, metavar="N", help="trials at once (default 1, or one per device)"
    )
    run.add_argument(
        "--devices", metavar="IDS", help="comma-separated device ids, one per running trial"
    )
    run.add_argument("--sweep-dir", metavar="DIR",
                     help="where the trials go (default: output_models/sweeps/<config>-<hash>); "
                          "alone, resumes the sweep recorded there")  # fmt: skip
    run.add_argument("--dir-var", default="output_dir", metavar="NAME",
                     help="the template variable that receives each trial's directory (output_dir)")  # fmt: skip
    run.add_argument(
        "--dry-run", action="store_true", help="print the trials' commands, run nothing"
    )
    run.add_argument("--report", action="store_true",
                     help="print the table and write the CSV and plot of the sweep so far, run nothing")  # fmt: skip
    parser.add_argument("train_args", nargs="*", metavar="-- TRAIN_OPTIONS",
                        help="passed to every `forgather train` (after --): --max-steps 20")  # fmt: skip


@dataclass
class Plan:
    """One invocation's sweep: what every trial shares, what varies, and how to search."""

    base: dict[str, Any]
    dims: list[Dimension]
    search: str  # "grid", "random" or "optuna"
    count: int | None
    seed: int
    sweep_dir: Path
    metric: str | None
    mode: str
    reduce: str
    trials: list[dict[str, Any]] = field(default_factory=list)  # values per planned trial


def _sweep(ctx: CommandContext, args: argparse.Namespace) -> int:
    plan = _plan(ctx, args)
    if args.report:
        return _report(ctx, plan, Manifest.open(plan.sweep_dir, plan.base))
    if args.optuna is not None or plan.search == "optuna":
        from forgather.cli.sweep_optuna import require_optuna

        require_optuna()
    if args.dry_run:  # nothing is written
        return _dry_run(ctx, plan)
    _preflight(plan)
    with _locked(plan.sweep_dir):
        manifest = Manifest.open(plan.sweep_dir, plan.base)
        manifest.add_dimensions(
            [{"name": d.name, "kind": d.kind, "spec": d.spec} for d in plan.dims]
        )
        manifest.settings.update(search=plan.search, count=plan.count, seed=plan.seed)
        planned = [manifest.trial_for(v, _words(plan.dims, v)) for v in plan.trials]
        manifest.save()
        if plan.search == "optuna":
            from forgather.cli.sweep_optuna import OptunaSource

            source = OptunaSource(manifest, plan.dims, plan.count, plan.seed, plan.mode,
                                  lambda t: _score(t, plan), lambda v: _words(plan.dims, v))  # fmt: skip
            total, to_run = plan.count, source.budget
        else:
            from forgather.cli.sweep_runner import ListSource

            pending = [t for t in planned if t.status != FINISHED]
            source, total, to_run = ListSource(pending), len(planned), len(pending)
        print(f"sweep {plan.sweep_dir}: {total} trials, {total - to_run} finished before",
              file=sys.stderr, flush=True)  # fmt: skip
        runner = _runner(plan, manifest, args, to_run)
        interrupted = runner.run(source)
        if plan.search == "optuna":
            planned = source.trials
    code = _report(ctx, plan, manifest, planned, replot=False)
    unfinished = [t for t in planned if t.status != FINISHED]
    if interrupted:
        return 130
    if runner.abort:  # every trial's train command is refused: running again changes nothing
        raise UsageError(f"{runner.abort}; fix the train options (after --) and run again")
    if unfinished:
        raise CLIError(
            f"{len(unfinished)} of {len(planned)} trials did not finish "
            f"({', '.join(t.name for t in unfinished)}); run the same command again to retry them"
        )
    return code


def _refuse_unread(ctx: CommandContext, names: list[str]) -> None:
    """Refuse to sweep a ``-D`` variable that no template of the config reads.

    Every trial would be the same run, and the sweep would still name a "best" value.
    """
    read = ctx.project.variables_read(ctx.config_name) if names else None
    unread = [n for n in names if read is not None and n not in read]
    if unread:
        raise UsageError(
            f"--grid {', '.join(unread)}: no template of {ctx.config_name} reads "
            f"{'this variable' if len(unread) == 1 else 'these variables'}, so every trial "
            "would be the same run (`forgather pp` shows the config; sweep a config value "
            "with --set-grid PATH=V1,V2)"
        )


def _preflight(plan: Plan) -> None:
    """`forgather check` the config with the first trial's `--set` values, and without them.

    A swept `--set` path with a typo (a new key under a mapping is a valid
    place) would otherwise fail every trial in turn, each after loading the
    model and data. Only what the trial's values break is refused: a config
    that fails the check on its own is left to its trials.
    """
    import subprocess

    if not plan.trials or not any(d.kind == "set" for d in plan.dims):
        return  # Optuna chooses its values as results come in; -D values are the config's own
    base = plan.base
    words = [sys.executable, "-m", "forgather", "-p", base["project"], "-t", base["config"],
             *base["assignments"], *base["options"],
             "-D", f"{base['dir_var']}={format_value(str(plan.sweep_dir / 'preflight'))}"]  # fmt: skip
    trial = _words(plan.dims, plan.trials[0])

    def check(extra: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([*words, *extra, "check"], capture_output=True, text=True)

    with_values = check(trial)
    if with_values.returncode == 0 or check([]).returncode != 0:
        return
    problems = (with_values.stdout + with_values.stderr).strip()
    raise UsageError(
        f"the first trial's values ({shlex.join(trial)}) break the config, which passes "
        f"`forgather check` without them; no trial was started:\n{problems}"
    )


def _dry_run(ctx: CommandContext, plan: Plan) -> int:
    manifest = Manifest.open(plan.sweep_dir, plan.base)
    for trial in [manifest.trial_for(v, _words(plan.dims, v)) for v in plan.trials]:
        command = _command(plan.base, trial, manifest.trial_dir(trial))
        ctx.emit(f"# {trial.name} ({trial.status})\n{shlex.join(command)}")
    if plan.search == "optuna":
        ctx.emit(f"# {plan.count} trials whose values Optuna chooses as results come in")
    return 0


# -- the plan -------------------------------------------------------------------------


def _plan(ctx: CommandContext, args: argparse.Namespace) -> Plan:
    """What this invocation sweeps: from the options, or (``--sweep-dir`` alone) as recorded."""
    dims = [parse_dimension(text, "define") for text in args.grid]
    dims += [parse_dimension(text, "set") for text in args.set_grid]
    if not dims:
        if not args.sweep_dir:
            raise CLIError("nothing to sweep: give --grid NAME=V1,V2 or --set-grid PATH=V1,V2 "
                           "(or --sweep-dir DIR to resume a sweep)")  # fmt: skip
        return _recorded_plan(Path(args.sweep_dir), args)
    names = [d.name for d in dims]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CLIError(f"swept twice: {', '.join(repeated)}")
    fixed = set(ctx.template_vars) | {path for path, _ in ctx.overrides}
    clash = [n for n in names if n in fixed]
    if clash:
        raise CLIError(f"{', '.join(clash)} is both swept and fixed by -D/--set")
    if args.dir_var in names or args.dir_var in ctx.template_vars:
        raise CLIError(f"{args.dir_var} receives each trial's directory (--dir-var): "
                       "it cannot be swept or fixed")  # fmt: skip
    _refuse_unread(ctx, [d.name for d in dims if d.kind == "define"])
    project = os.path.abspath(find_project_dir(ctx.project_dir))
    config = ctx.config_template or ctx.config_name
    if os.path.isfile(config):
        config = os.path.abspath(config)
    train_args = list(args.train_args)
    base = {
        "project": project,
        "config": config,
        "assignments": [
            w for k, v in ctx.template_vars.items() for w in ("-D", f"{k}={format_value(v)}")
        ]
        + [w for k, v in ctx.overrides for w in ("--set", f"{k}={format_value(v)}")],
        "options": ["--no-dyn"] if ctx.no_dyn else [],
        "train_args": train_args,
        "dir_var": args.dir_var,
    }
    search = (
        "optuna" if args.optuna is not None else "random" if args.random is not None else "grid"
    )
    count = args.optuna if search == "optuna" else args.random
    if count is not None and count < 1:
        raise CLIError(f"--{search} expects a positive number of trials, got {count}")
    plan = Plan(base, dims, search, count, args.seed, Path(), args.metric, args.mode, args.reduce)
    plan.sweep_dir = Path(args.sweep_dir) if args.sweep_dir else _default_dir(plan, project, config)
    _fill_trials(plan)
    return plan


def _recorded_plan(sweep_dir: Path, args: argparse.Namespace) -> Plan:
    data = load(sweep_dir)
    settings = data.get("settings", {})
    dims = [parse_dimension(f"{d['name']}={d['spec']}", d["kind"]) for d in data["dimensions"]]
    plan = Plan(data["base"], dims, settings.get("search", "grid"), settings.get("count"),
                settings.get("seed", 0), sweep_dir, args.metric, args.mode, args.reduce)  # fmt: skip
    more = args.optuna if args.optuna is not None else args.random
    if more is not None:  # the same search, with more (or fewer) trials
        search = "optuna" if args.optuna is not None else "random"
        if search != plan.search:
            raise CLIError(f"{sweep_dir} holds a {plan.search} sweep, not a {search} one")
        if more < 1:
            raise CLIError(f"--{search} expects a positive number of trials, got {more}")
        plan.count = more
    _fill_trials(plan)
    if plan.search == "grid":  # the trials recorded (a grid may have been extended), in order
        plan.trials = [t["values"] for t in data["trials"]]
    return plan


def _fill_trials(plan: Plan) -> None:
    if plan.search == "grid":
        plan.trials = grid_trials(plan.dims)
    elif plan.search == "random":
        plan.trials = random_trials(plan.dims, plan.count, plan.seed)


def _default_dir(plan: Plan, project: str, config: str) -> Path:
    identity = {
        "base": plan.base,
        "dims": sorted((d.kind, d.name, d.spec) for d in plan.dims),
        "search": plan.search,
        "seed": plan.seed if plan.search != "grid" else None,
        "mode": plan.mode if plan.search == "optuna" else None,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    stem = Path(config).name.removesuffix(".yaml")
    return Path(project) / "output_models" / "sweeps" / f"{stem}-{digest}"


def _words(dims: list[Dimension], values: dict[str, Any]) -> list[str]:
    return [w for d in dims if d.name in values for w in assignment(d, values[d.name])]


def _command(base: dict[str, Any], trial: TrialRecord, trial_dir: Path) -> list[str]:
    """``python -m forgather -p P -t C <fixed> <trial values> -D <dir_var>=DIR train <train args>``."""
    return [
        sys.executable, "-m", "forgather", "-p", base["project"], "-t", base["config"],
        *base["assignments"], *base["options"], *trial.words,
        "-D", f"{base['dir_var']}={format_value(str(trial_dir.absolute()))}",
        "train", *base["train_args"],
    ]  # fmt: skip


def _runner(plan: Plan, manifest: Manifest, args: argparse.Namespace, total: int | None):
    from forgather.cli.sweep_runner import TrialRunner

    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else []
    parallel = args.parallel or max(1, len(devices))
    if parallel < 1:
        raise CLIError(f"--parallel expects a positive number, got {parallel}")
    if devices and parallel > len(devices):
        raise CLIError(
            f"--parallel {parallel} needs as many devices; --devices gives {len(devices)}"
        )
    return TrialRunner(manifest, lambda t, d: _command(plan.base, t, d), parallel, devices, total)


class _locked:
    """Hold ``<sweep_dir>/.lock`` while trials run: two sweeps in one directory would collide."""

    def __init__(self, sweep_dir: Path):
        self.path = Path(sweep_dir) / ".lock"
        self.file = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w")  # noqa: SIM115 - held until __exit__
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            return self
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise CLIError(f"another sweep is running in {self.path.parent}") from None
        return self

    def __exit__(self, *exc):
        self.file.close()


# -- the report -----------------------------------------------------------------------


def _metric(plan: Plan, trials: list[TrialRecord]) -> str:
    if plan.metric:
        return plan.metric
    for name in DEFAULT_METRICS:
        if any(name in t.metrics for t in trials):
            return name
    return DEFAULT_METRICS[0]


def _score(trial: TrialRecord, plan: Plan) -> float | None:
    """A finished trial's score (for Optuna); None when it logged no such metric."""
    summary = trial.metrics.get(_metric(plan, [trial]))
    if not summary:
        return None
    if plan.reduce == "last":
        return summary["last"]
    return summary["best_min"] if plan.mode == "min" else summary["best_max"]


def _report(ctx: CommandContext, plan: Plan, manifest: Manifest,
            trials: list[TrialRecord] | None = None, replot: bool = True) -> int:  # fmt: skip
    from forgather.cli.sweep_report import format_table, plot_metric, summary_rows, write_csv

    trials = manifest.trials if trials is None else trials
    if not trials:
        raise CLIError(f"no trials in {manifest.sweep_dir / MANIFEST}")
    names = list(dict.fromkeys(n for t in trials for n in t.values))
    metric = _metric(plan, trials)
    logged = sorted({name for t in trials for name in t.metrics})
    if plan.metric and logged and metric not in logged:  # a misspelt --metric: a table of "-"
        raise CLIError(f"no trial logged {metric!r}; the trials logged: {', '.join(logged)}")
    rows = summary_rows(trials, metric, plan.mode, plan.reduce)
    csv_path = manifest.sweep_dir / "summary.csv"
    write_csv(rows, names, metric, csv_path)
    logs = {d["name"]: d for d in manifest.dimensions}
    dims = [{"name": n, "log": _log_scale(logs.get(n))} for n in names]
    plot_path = manifest.sweep_dir / f"sweep_{metric}.png"
    why_not = None
    manifest_path = manifest.sweep_dir / MANIFEST
    # Redrawing costs seconds (matplotlib); an image newer than the manifest, drawn with the
    # default scoring, is what it would draw again.
    if (
        replot
        or (plan.mode, plan.reduce) != ("min", "last")
        or not (plot_path.exists() and plot_path.stat().st_mtime >= manifest_path.stat().st_mtime)
    ):
        why_not = plot_metric(rows, dims, metric, plan.mode, plot_path)  # else: up to date
    done = sum(t.status == FINISHED for t in trials)
    lines = [
        f"sweep {manifest.sweep_dir}: {done} of {len(trials)} trials finished; "
        f"{metric} ({plan.reduce} value, {'lower' if plan.mode == 'min' else 'higher'} is better)",
        format_table(rows, names, metric),
    ]
    best = [r for r in rows if r.is_best]
    if best:
        values = " ".join(f"{n}={format_value(v)}" for n, v in best[0].trial.values.items())
        lines.append(f"best: {best[0].trial.name}  {values}  {metric}={best[0].score:.5g}")
    elif done:
        lines.append(f"no finished trial logged {metric}")
    lines.append(
        f"wrote {csv_path}" + (f", {plot_path}" if why_not is None else f" (no plot: {why_not})")
    )
    ctx.emit("\n".join(lines))
    return 0


def _log_scale(dim: dict[str, Any] | None) -> bool:
    if not dim:
        return False
    return parse_dimension(f"{dim['name']}={dim['spec']}", dim["kind"]).log_scale


COMMANDS = {
    "sweep": Command(
        run=_sweep,
        add_arguments=_arguments,
        description=(
            "Each trial runs `forgather train` in a subprocess, in its own directory under the "
            "sweep directory\n(passed as -D output_dir=DIR; --dir-var names another variable). "
            "Finished trials are skipped\nwhen the same command runs again; failed or interrupted "
            "ones run again from scratch.\nValues are read like -D values (YAML 1.2), split at "
            "top-level commas."
        ),
    ),  # fmt: skip
}
