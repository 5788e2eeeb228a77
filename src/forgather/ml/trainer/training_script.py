"""``TrainingScript``: the ``main`` target of a training config.

It reads top to bottom: pick the run directory → record what will run →
build the trainer → train → write the final weights next to the generated
model code. ``forgather train`` and ``Project(...)()`` both build ``main``
and call :meth:`TrainingScript.run`.

Decisions a reader may question:

* The run directory is chosen at run time, not in the template, so every
  rank of a ``torchrun`` job agrees on it: the launcher exports
  ``FORGATHER_RUN_TIME`` and each rank derives the same name from it.
* Resuming (``resume_from_checkpoint: true``) continues in the most recently
  started run directory that holds a complete checkpoint
  (``checkpoint_layout.run_to_resume``), and says which on stderr (and names
  an earlier run that got further): a resumed run is the same run, with one
  log and one set of checkpoints. A resumed run already at its ``max_steps``
  trains nothing, says so (rank 0), and leaves the final model as it is: the
  model directory holds those weights already, or a link ``checkpoint link``
  made, which a rewrite would replace with a copy.
* ``args.seed`` is applied *before* the trainer is built, not only by the
  trainer. The templates pass the model, datasets and callbacks to the
  trainer's ``!partial``, and a partial builds its arguments when it is
  called, so the model is initialised here, under the seed: two runs of one
  config start from the same weights (every rank of a job too), as Hugging
  Face's ``model_init`` gives. A model built outside the trainer's partial
  would be built earlier, before any seed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from forgather.ml import checkpoint_layout as layout

from .rng import set_seed
from .training_args import TrainingArguments

#: Exported by ``forgather train`` so that all ranks name the run alike.
RUN_TIME_ENV = "FORGATHER_RUN_TIME"


def _run_time() -> str:
    return os.environ.get(RUN_TIME_ENV) or time.strftime("%Y-%m-%dT%H-%M-%S")


def _git_commit(directory: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment_info(project_dir: str = ".") -> dict[str, Any]:
    """Versions, host, command line and git commit: what reproducing the run needs."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": {n: version(n) for n in ("torch", "transformers", "accelerate", "forgather")},
        "command_line": sys.argv,
        "cwd": os.getcwd(),
        "git_commit": _git_commit(project_dir),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "env": {
            k: v for k, v in os.environ.items() if k.startswith(("CUDA_", "FORGATHER_", "OMP_"))
        },
    }


class TrainingScript:
    """Run a training job and keep everything needed to reproduce and resume it.

    Args:
        trainer: makes the trainer given ``args=`` (a ``!partial`` of a trainer class).
        args: the training arguments; ``output_dir`` and ``logging_dir`` are both
            replaced by the run directory (checkpoints go to ``<run>/checkpoints``).
        model_dir: the generated model directory (``output_models/<name>``); final
            weights are saved here.
        run_name: runs are ``<model_dir>/runs/<run_name>_<time>``.
        config_text: the rendered config (the build's ``pp_config``).
        config_sources: preprocessed templates, name -> Jinja source.
        generated_code: ``to_python`` of the config's ``main``.
        project_dir: for the git commit of the run.
        save_final_model: save the trained weights into ``model_dir`` at the end (unless
            a resume found nothing left to train).
    """

    def __init__(
        self,
        trainer: Callable[..., Any],
        args: TrainingArguments,
        model_dir: str,
        run_name: str = "run",
        config_text: str = "",
        config_sources: Mapping[str, str] | None = None,
        generated_code: str = "",
        project_dir: str = ".",
        save_final_model: bool = True,
    ) -> None:
        self.trainer_factory = trainer
        self.args = args
        self.model_dir = Path(model_dir)
        self.run_name = run_name
        self.config_text = config_text
        self.config_sources = dict(config_sources or {})
        self.generated_code = generated_code
        self.project_dir = project_dir
        self.save_final_model = save_final_model
        self.run_dir: Path | None = None
        self.resumed_from: layout.Checkpoint | None = None  # set by choose_run_dir
        self.trainer: Any = None

    def run(self) -> Any:
        """Train; returns the trainer's ``TrainOutput``."""
        self.run_dir = self.choose_run_dir()
        args = dataclasses.replace(
            self.args, output_dir=str(self.run_dir), logging_dir=str(self.run_dir)
        )
        if _is_main_process():
            self.record_run(self.run_dir)
        set_seed(args.seed)  # building the trainer builds the model: initialise it under the seed
        try:
            self.trainer = self.trainer_factory(args=args)
            output = self.trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
        except BaseException:
            if _is_main_process() and self.resumed_from is None:
                _remove_if_nothing_trained(self.run_dir)
            raise
        max_steps = getattr(getattr(self.trainer, "state", None), "max_steps", args.max_steps)
        resumed = self.resumed_from
        done = getattr(output, "global_step", None)
        if resumed is not None and done == resumed.step >= max_steps > 0:
            # Nothing trained: the model directory already holds these weights (or what
            # `checkpoint link` put there); rewriting it would undo such a link.
            if _is_main_process():
                self._say_nothing_to_train(resumed, max_steps)
        elif self.save_final_model:
            self.trainer.save_model(str(self.model_dir))
        return output

    def choose_run_dir(self) -> Path:
        """The run holding the newest checkpoint when resuming, else a new one."""
        if self.args.resume_from_checkpoint is True:
            run = layout.run_to_resume(str(self.model_dir))
            if run is not None:
                runs = layout.resumable_runs(str(self.model_dir))
                _say_which_run(run, runs)
                self.resumed_from = runs[run]
                return Path(run)
        return self.model_dir / layout.RUNS_DIR / f"{self.run_name}_{_run_time()}"

    def _say_nothing_to_train(self, resumed: layout.Checkpoint, max_steps: int) -> None:
        """Say that a resumed run was already done, how to go on, and that the model stays."""
        run = os.path.basename(os.path.dirname(os.path.dirname(resumed.path)))
        if resumed.step == max_steps:
            reached = f"step {resumed.step} = max_steps"
        else:  # max_steps lowered since
            reached = f"step {resumed.step}, past max_steps {max_steps}"
        if self.args.max_steps > 0:
            how = "raise --max-steps to continue"
        else:  # the horizon came from the epochs
            how = "raise num_train_epochs or set --max-steps to continue"
        message = f"forgather: run {run} already reached {reached}; nothing to train ({how})"
        if self.save_final_model:
            weights = [self.model_dir / name for name in (layout.MODEL_FILE, layout.INDEX_FILE)]
            if any(os.path.lexists(path) for path in weights):
                message += f"; the final model in {self.model_dir} is left as it is"
            else:
                message += (
                    f"; {self.model_dir} has no weights: `forgather checkpoint link "
                    f"{self.model_dir}` links them to {os.path.basename(resumed.path)}"
                )
        print(message, file=sys.stderr, flush=True)

    def record_run(self, run_dir: Path) -> None:
        """Write the resolved config, templates, generated code and environment."""
        record_run(
            run_dir, self.config_text, self.config_sources, self.generated_code, self.project_dir
        )

    def __repr__(self) -> str:
        return f"TrainingScript(model_dir={str(self.model_dir)!r}, run_name={self.run_name!r})"


def _remove_if_nothing_trained(run_dir: Path) -> None:
    """Remove a new run directory that a failure left with only its records in it.

    A mistake found when the trainer starts (``lr_scheduler_type: cosin``) would
    otherwise leave a run that ``--resume`` and ``plot`` list but that holds no
    step: no log, no checkpoint.
    """
    import shutil

    if (run_dir / layout.CHECKPOINTS_DIR).exists() or (run_dir / layout.LOG_FILE).exists():
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        run_dir.parent.rmdir()  # runs/, when the failed run was all it held


def _say_which_run(run: str, runs: Mapping[str, layout.Checkpoint]) -> None:
    """Name the run a resume continues (on the first rank), and a run further along."""
    if os.environ.get("RANK", "0") != "0":
        return
    chosen = runs[run]
    print(f"forgather: resuming run {os.path.basename(run)} from "
          f"{os.path.basename(chosen.path)}", file=sys.stderr, flush=True)  # fmt: skip
    ahead = max(runs.values(), key=lambda c: c.step)
    if ahead.step > chosen.step:
        print(
            f"forgather: note: an earlier run, {os.path.basename(os.path.dirname(os.path.dirname(ahead.path)))}, "
            f"reached step {ahead.step}; to continue it instead, set "
            f"resume_from_checkpoint to {ahead.path}",
            file=sys.stderr, flush=True,
        )  # fmt: skip


def record_run(
    run_dir: Path,
    config_text: str,
    config_sources: Mapping[str, str],
    generated_code: str = "",
    project_dir: str = ".",
) -> None:
    """Write a run's resolved config, templates, generated code and environment into `run_dir`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config_text)
    if generated_code:
        (run_dir / "generated_code.py").write_text(generated_code)
    templates = run_dir / "templates"
    for name, source in config_sources.items():
        path = templates / _safe_relative(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    info = environment_info(project_dir)
    (run_dir / "environment.json").write_text(json.dumps(info, indent=2, default=str) + "\n")


def _safe_relative(name: str) -> Path:
    """A template name as a path inside the run's ``templates/`` (never outside it).

    A config given as an absolute path (``-t /abs/cfg.yaml``) keeps only its file
    name; ``..`` steps are dropped.
    """
    parts = [p for p in Path(name).parts if p not in (Path(name).anchor, "..", ".")]
    if Path(name).is_absolute():
        parts = parts[-1:]
    return Path(*parts) if parts else Path("config.yaml")


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
