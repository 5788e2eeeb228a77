"""Training commands: ``train``, ``tb``, ``plot`` and ``checkpoint``.

    forgather -t train_tiny_llama.yaml train                 # in this process, one device
    forgather -t cfg.yaml train --nproc 2                    # torchrun, 2 processes
    forgather -t cfg.yaml train -d 0,1                       # torchrun on GPUs 0 and 1
    forgather -t cfg.yaml train --nproc 2 --dry-run          # print the torchrun command
    forgather -t cfg.yaml train -- --nnodes 2 --node-rank 0 --rdzv-endpoint host:29400
    forgather -t cfg.yaml tb                                 # TensorBoard on the config's runs
    forgather plot output_models/tiny_llama/runs/tiny_llama_2026-11-22T18-00-00
    forgather -t cfg.yaml checkpoint link                    # newest checkpoint -> model dir

Decision a reader may question: several processes are started by running
``forgather … train`` itself under ``torchrun``; each rank then trains in
process. The launcher exports ``FORGATHER_RUN_TIME`` so that every rank (and
every node) names the same run directory, and stays until the ranks exit,
passing signals on (``forgather.cli.launch``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.errors import CLIError

_LAUNCH_OPTIONS = {"--nproc": True, "-d": True, "--devices": True, "--dry-run": False}


# -- train ------------------------------------------------------------------------


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-d", "--devices", help="comma-separated device ids (sets CUDA_VISIBLE_DEVICES)"
    )
    parser.add_argument("--nproc", type=int, help="processes per node (torchrun)")
    parser.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    parser.add_argument(
        "torchrun_args",
        nargs="*",
        metavar="-- TORCHRUN_OPTIONS",
        help="passed to torchrun (after --)",
    )


def _under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def _child_argv(argv: list[str]) -> list[str]:
    """This command line without the launch options (what each rank runs)."""
    if "--" in argv:
        argv = argv[: argv.index("--")]
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        name = item.split("=", 1)[0]
        if name in _LAUNCH_OPTIONS:
            skip = _LAUNCH_OPTIONS[name] and "=" not in item
            continue
        out.append(item)
    return out


def _threads_per_rank(nproc: int) -> int:
    """The cores this process may use, divided among the node's ranks (at least 1), as
    `forgather.ml.trainer.threads.fitted_threads` divides them (without importing torch)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, nproc))


def _train(ctx: CommandContext, args: argparse.Namespace) -> int:
    config = ctx.config
    env = config.build("env") if "env" in config.targets else {}
    nproc = args.nproc or (len(args.devices.split(",")) if args.devices else 1)
    if args.devices:
        env = {**env, "CUDA_VISIBLE_DEVICES": args.devices}
    launch = not _under_torchrun() and (nproc > 1 or args.devices or args.torchrun_args)
    if launch:
        from forgather.cli.launch import run_job, torchrun_command

        # Each rank runs this command as parsed here, not sys.argv (the shell's own).
        command = torchrun_command(_child_argv(ctx.argv), nproc, args.torchrun_args)
        if not any(os.environ.get(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
            # torchrun would set 1 thread per rank, which the trainer reads as the user's
            # choice: give each rank its share of the cores (the trainer's own rule).
            env = {"OMP_NUM_THREADS": _threads_per_rank(nproc), **env}
        if args.dry_run:
            prefix = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in env.items())
            ctx.emit((prefix + " " if prefix else "") + shlex.join(command))
            return 0
        child_env = {**os.environ, **{k: str(v) for k, v in env.items()}}
        child_env.setdefault("FORGATHER_RUN_TIME", time.strftime("%Y-%m-%dT%H-%M-%S"))
        return run_job(command, child_env)
    if args.dry_run:
        ctx.emit(f"forgather {shlex.join(_child_argv(ctx.argv))}  # in this process")
        return 0
    os.environ.update({k: str(v) for k, v in env.items()})
    return _train_in_process(ctx)


def _train_in_process(ctx: CommandContext) -> int:
    # Before torch allocates: its CPU allocator backs blocks of 2 MiB and more with huge
    # pages, so a step's fresh pages cost 1/512 of the faults (docs/training.md, "Host memory").
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    config = ctx.config
    project = ctx.project
    template = ctx.template_name()
    sources = project.environment.preprocessed_sources(template)
    script = config.build("main", config_sources=sources, generated_code=config.to_python("main"))
    if not hasattr(script, "run"):
        raise CLIError(
            f"main of {ctx.config_name} builds a {type(script).__name__}, not a training script"
        )
    from forgather.ml.trainer.callbacks import TrainingAborted

    try:
        script.run()
    except TrainingAborted as e:
        raise CLIError(str(e)) from None  # asked for: one line, no traceback
    return 0


# -- tb, plot, checkpoint -------------------------------------------------------------


def _model_dir(ctx: CommandContext) -> Path:
    meta = ctx.config.build_data("meta") if "meta" in ctx.config.targets else {}
    output_dir = meta.get("output_dir") if isinstance(meta, dict) else None
    if not output_dir:
        raise CLIError(f"{ctx.config_name} names no output_dir in its meta target")
    return Path(output_dir)


def _tb_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--all",
        action="store_true",
        help="watch every model directory (meta's models_dir; default: the output_dir's parent)",
    )
    parser.add_argument("--port", type=int, default=6006)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    parser.add_argument(
        "tensorboard_args",
        nargs="*",
        metavar="-- TENSORBOARD_OPTIONS",
        help="passed to tensorboard (after --); its --port/--host/--bind_all replace ours",
    )


def _tb_logdir(ctx: CommandContext, watch_all: bool) -> Path:
    """The config's runs, or with ``watch_all`` the directory holding every model directory."""
    if not watch_all:
        return _model_dir(ctx) / "runs"
    meta = ctx.config.build_data("meta") if "meta" in ctx.config.targets else {}
    models_dir = meta.get("models_dir") if isinstance(meta, dict) else None
    return Path(models_dir) if models_dir else _model_dir(ctx).parent


def _tb(ctx: CommandContext, args: argparse.Namespace) -> int:
    logdir = _tb_logdir(ctx, args.all)
    extra = list(args.tensorboard_args)
    given = {word.split("=", 1)[0] for word in extra}
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    if not given & {"--host", "--bind_all"}:
        command += ["--host", args.host]
    if "--port" not in given:
        command += ["--port", str(args.port)]
    command += extra
    if args.dry_run:
        ctx.emit(shlex.join(command))
        return 0
    if not logdir.is_dir():
        raise CLIError(f"no runs yet in {logdir}")
    return run_as_child(command)


def run_as_child(command: list[str]) -> int:
    """Run ``command`` until it exits, and stop it (and what it started) when we are stopped.

    TensorBoard starts a data server of its own; run plainly, both outlived a
    ``kill`` of ``forgather tb``. Here the child gets its own process group,
    which gets SIGTERM when we get SIGTERM, SIGINT or SIGHUP, and on Linux the
    child is also sent SIGTERM if we die without passing anything on.
    """
    import signal

    child = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent)

    def forward(signum, frame):  # SIGTERM whatever came: background jobs ignore SIGINT
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGTERM)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {signum: signal.signal(signum, forward) for signum in handled}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # a second Ctrl-C while it stops: keep waiting
                continue
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _die_with_parent() -> None:
    """(In the child, before exec.) Ask Linux for SIGTERM when the parent dies."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run_dir", metavar="RUN_DIR", help="a run directory (holds trainer_logs.json)"
    )
    parser.add_argument(
        "--out",
        metavar="FILE",
        help="image path, .png or .svg (default: RUN_DIR/training_curves.png)",
    )


def _plot(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.ml import checkpoint_layout as layout  # no torch
    from forgather.ml.trainer import plot_run

    image = args.out
    to_output = image is None and (ctx.output or "").lower().endswith((".png", ".svg"))
    if to_output:  # `-o curves.svg` names the image, as --out does
        image = ctx.output
    run_dir = os.path.expanduser(args.run_dir)
    if not os.path.exists(run_dir):
        raise CLIError(f"{run_dir}: no such run directory or log file")
    if os.path.isdir(run_dir) and not os.path.isfile(os.path.join(run_dir, layout.LOG_FILE)):
        raise CLIError(_not_a_run_dir(run_dir))
    try:
        path = plot_run(run_dir, image)
    except (FileNotFoundError, ValueError) as e:
        raise CLIError(str(e)) from None
    if to_output:
        print(f"wrote {path}")  # not through -o: that file is the image
    else:
        ctx.emit(f"wrote {path}")
    return 0


def _not_a_run_dir(path: str, shown: int = 3) -> str:
    """Why ``path`` (a directory) cannot be plotted, and its newest runs (``shown`` at most)
    that can: those under its ``runs/`` (a model directory), else its own subdirectories."""
    from forgather.ml import checkpoint_layout as layout  # no torch

    message = f"{path} is not a training run directory (no {layout.LOG_FILE} there)"
    runs_dir = os.path.join(path, layout.RUNS_DIR)
    parent = runs_dir if os.path.isdir(runs_dir) else path
    runs = [
        entry.path
        for entry in os.scandir(parent)
        if entry.is_dir() and os.path.isfile(os.path.join(entry.path, layout.LOG_FILE))
    ]
    if not runs:
        if parent == runs_dir:
            return f"{message}; {runs_dir} holds no run with a {layout.LOG_FILE} yet"
        return message
    runs.sort(key=layout.run_start, reverse=True)  # the layout's "newest": the start time
    more = f" (and {len(runs) - shown} older)" if len(runs) > shown else ""
    which = "its newest run" if len(runs) == 1 else "one of its runs, newest first"
    return f"{message}; plot {which}: {', '.join(runs[:shown])}{more}"


def _checkpoint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", choices=("list", "link"), help="list checkpoints, or link the newest that fits"
    )
    parser.add_argument(
        "model_dir", nargs="?", help="model directory (default: the config's output_dir)"
    )
    parser.add_argument(
        "--output-path",
        metavar="DIR",
        help="model directory (the same as MODEL_DIR; the original Forgather's spelling)",
    )
    parser.add_argument(
        "-f", "--force", action="store_true", help="link: replace a real weights file"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="link: say what would be linked, change nothing"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="list: say whether each one fits the model (loads torch)",
    )


def _model_tensors(model_dir: Path):
    """The tensors of the model ``model_dir/config.json`` describes; None without config.json."""
    if not (model_dir / "config.json").is_file():
        print(f"forgather: {model_dir} has no config.json: checkpoints are not checked against a model",
              file=sys.stderr)  # fmt: skip
        return None
    from forgather.serve.loading import model_dir_tensors  # torch, transformers

    return model_dir_tensors(str(model_dir))


def _checkpoint(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.ml import checkpoint_layout as layout  # no torch

    if args.model_dir and args.output_path and Path(args.model_dir) != Path(args.output_path):
        raise CLIError("give the model directory once: MODEL_DIR or --output-path, not both")
    chosen_dir = args.model_dir or args.output_path
    model_dir = Path(os.path.expanduser(chosen_dir)) if chosen_dir else _model_dir(ctx)
    if not model_dir.is_dir():
        raise CLIError(f"{model_dir} is not a directory")
    checkpoints = layout.find_checkpoints(str(model_dir))
    if not checkpoints:
        if args.action == "list":
            ctx.emit(f"no checkpoints under {model_dir}")
            return 0
        raise CLIError(
            f"no checkpoints under {model_dir}: train first (checkpoints are saved every save_steps)"
        )
    if args.action == "list":
        model = _model_tensors(model_dir) if args.check else None
        lines = []
        for checkpoint in reversed(checkpoints):  # oldest first, like a log
            notes = [] if checkpoint.has_weights else [f"no {layout.MODEL_FILE}"]
            link = layout.linked_as(checkpoint.path)
            if link is not None:
                notes.append(f"linked as {link}")
            if model is not None and checkpoint.has_weights:
                try:
                    tensors = layout.checkpoint_tensors(checkpoint.path)
                except (OSError, ValueError) as e:  # one bad checkpoint: said, the list goes on
                    notes.append(f"unreadable: {e}")
                else:
                    found = {n: s for n, (_d, s) in tensors.items()}
                    problem = layout.fit_problem(found, model)
                    notes.append(f"does not fit: {problem}" if problem else "fits")
            lines.append(checkpoint.path + (f"  ({'; '.join(notes)})" if notes else ""))
        ctx.emit("\n".join(lines))
        return 0
    return _link(ctx, model_dir, checkpoints, args.force, args.dry_run)


def _link(ctx: CommandContext, model_dir: Path, checkpoints, force: bool, dry_run: bool) -> int:
    """Point ``model_dir/model.safetensors`` at the newest checkpoint that fits the model
    (``dry_run``: only say which, and whether ``force`` would be needed)."""
    from forgather.ml import checkpoint_layout as layout

    if (model_dir / "adapter_config.json").is_file() and not (model_dir / "config.json").is_file():
        # Its checkpoints hold the whole model under PEFT's wrapped names: nothing loads them.
        raise CLIError(
            f"{model_dir} is a LoRA adapter directory: its checkpoints' weights are no model "
            f"file to link; merge the adapter into its base (forgather merge-lora {model_dir} "
            "MERGED_DIR), or resume training from the checkpoint"
        )

    def skipped(checkpoint, why: str) -> None:
        print(
            f"forgather: skipping {os.path.relpath(checkpoint.path, model_dir)}: {why}",
            file=sys.stderr,
        )

    chosen = layout.newest_fitting(checkpoints, _model_tensors(model_dir), skipped)
    if chosen is None:
        raise CLIError(
            f"no checkpoint under {model_dir} fits the model in {model_dir / 'config.json'} (see above)"
        )
    link = model_dir / layout.MODEL_FILE
    real_file = link.exists() and not link.is_symlink()
    target = os.path.relpath(os.path.join(chosen.path, layout.MODEL_FILE), model_dir)
    if dry_run:  # says what the real run would do, and what it would need
        note = "dry run: nothing changed"
        if real_file and not force:
            note += f"; {link.name} is a real file (final weights?): linking needs --force"
        ctx.emit(f"{link} -> {target}  ({note})")
        return 0
    if real_file and not force:
        raise CLIError(
            f"{link} is a real file (final weights?); pass --force to replace it with a link"
        )
    previous = os.path.dirname(os.path.realpath(link)) if link.is_symlink() else None
    # Marked first: while the link points at it, save_total_limit does not prune it.
    layout.mark_linked(chosen.path, str(link))
    tmp = model_dir / f".{layout.MODEL_FILE}.link"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target)
    os.replace(tmp, link)  # atomic: a reader sees the old weights or the new ones
    if (
        previous
        and os.path.basename(previous).startswith("checkpoint-")
        and (os.path.realpath(previous) != os.path.realpath(chosen.path))
    ):
        layout.unmark_linked(previous)
    if not link.exists():
        raise CLIError(
            f"{chosen.path} was pruned while it was being linked; run checkpoint link again"
        )
    ctx.emit(f"{link} -> {target}")
    return 0


COMMANDS = {
    "train": Command(run=_train, add_arguments=_train_arguments, uses_config=True),
    "tb": Command(run=_tb, add_arguments=_tb_arguments, uses_config=True),
    "plot": Command(run=_plot, add_arguments=_plot_arguments),
    "checkpoint": Command(run=_checkpoint, add_arguments=_checkpoint_arguments),
}
