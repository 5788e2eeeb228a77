"""The original Forgather's ``TrainingScript`` (``main`` of its training configs), and ``training_loop``.

Its configs build the trainer themselves (``trainer: !singleton:...:Trainer``)
and hand it over with the run's ``meta``::

    main: !singleton:forgather.ml.training_script:TrainingScript
        meta: *meta_output
        do_train: True
        do_save: False
        distributed_env: *distributed_env
        trainer: *trainer

``run()`` trains, evaluates and saves as the flags say. Our own configs use
:class:`forgather.ml.trainer.TrainingScript` instead, which also chooses the
run directory and records the config; this one keeps the original's contract
(the trainer's arguments say where everything goes) so an existing config
behaves as it did.

The decision a reader may question: the trainer is a built object, not a
factory. That is the original's contract; the model is still built under the
seed because the original's configs pass it as ``model_init``, which our
trainers call after seeding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["TrainingScript", "training_loop"]

logger = logging.getLogger(__name__)


class TrainingScript:
    """Run a built trainer: train, evaluate, save, as the original Forgather's configs ask.

    Args:
        meta: The config's ``meta`` (``output_dir`` is where ``do_save`` writes;
            ``config_name``, ``config_description`` and ``logging_dir`` are logged).
        do_save: Save the model into ``meta["output_dir"]`` at the end.
        do_train: Call ``trainer.train()``.
        do_eval: Call ``trainer.evaluate()`` (after training, if both).
        distributed_env: The job's ``DistributedEnvironment``; None: from the
            environment variables (rank 0 of 1 when not launched).
        trainer: The trainer (any object with ``train``, ``evaluate``, ``save_model``).
    """

    def __init__(
        self,
        *,
        meta: Mapping[str, Any],
        do_save: bool = False,
        do_train: bool = True,
        do_eval: bool = False,
        distributed_env: Any = None,
        trainer: Any,
    ) -> None:
        if distributed_env is None:
            from forgather.ml.distributed import from_env

            distributed_env = from_env()
        self.meta = dict(meta)
        self.do_save = do_save
        self.do_train = do_train
        self.do_eval = do_eval
        self.distributed_env = distributed_env
        self.trainer = trainer

    def run(self) -> dict[str, Any]:
        """Train, evaluate and save as requested.

        Returns:
            ``{"train": TrainOutput, "eval": metrics}`` for the steps that ran.
        """
        main = int(getattr(self.distributed_env, "local_rank", 0)) == 0
        if main:
            logger.info("training script: %s", self.meta.get("config_name", ""))
            for key in ("config_description", "output_dir", "logging_dir"):
                if key in self.meta:
                    logger.info("%s: %s", key, self.meta[key])
        results: dict[str, Any] = {}
        if self.do_train:
            results["train"] = self.trainer.train()
            if main:
                logger.info("training done: %s", results["train"])
        if self.do_eval:
            results["eval"] = self.trainer.evaluate()
            if main:
                logger.info("evaluation done: %s", results["eval"])
        if self.do_save:
            output_dir = self.meta.get("output_dir")
            if not output_dir:
                raise ValueError("do_save=True needs meta['output_dir'], where the model goes")
            self.trainer.save_model(output_dir)
            if main:
                logger.info("model saved to %s", output_dir)
        return results

    def __repr__(self) -> str:
        return (
            f"TrainingScript(config={self.meta.get('config_name', '')!r}, do_train={self.do_train}, "
            f"do_eval={self.do_eval}, do_save={self.do_save})"
        )


def training_loop(project_directory: str, config_template: str = "") -> Any:
    """Build a project's config and run its ``main`` (e.g. from ``accelerate.notebook_launcher``).

    Args:
        project_directory: The project directory (relative to the working directory).
        config_template: The config's name; "" for the project's default config.

    Returns:
        What ``main.run()`` returns.
    """
    from forgather.project import Project

    project = Project(config_template or None, os.fspath(project_directory))
    script = project()
    return script.run()
