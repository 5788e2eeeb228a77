"""What the multi-process trainers share, checked without launching a job.

Their behaviour under torchrun is tested by `test_accel_trainer.py`,
`test_pipeline_trainer.py` and `test_launch.py` (a signal seen by one rank
stops every rank at the same step).
"""

from __future__ import annotations

import inspect
import os
import signal

from forgather.ml.trainer import AccelTrainer, BaseTrainer, PipelineTrainer
from forgather.ml.trainer.parallel.multiprocess import AgreedStopSignals


def test_every_trainer_takes_the_base_arguments_then_its_options_by_keyword():
    base = list(inspect.signature(BaseTrainer).parameters)
    for trainer in (AccelTrainer, PipelineTrainer):
        parameters = inspect.signature(trainer).parameters
        positional = [n for n, p in parameters.items() if p.kind is p.POSITIONAL_OR_KEYWORD]
        options = [n for n, p in parameters.items() if n not in base]
        assert positional == base, trainer
        assert options and all(
            parameters[n].kind is inspect.Parameter.KEYWORD_ONLY for n in options
        )
        assert "timeout_seconds" in options


def test_without_a_process_group_the_agreed_signal_is_this_processs_own():
    with AgreedStopSignals() as signals:
        assert signals.poll() is None and signals.stopped_by is None
        os.kill(os.getpid(), signal.SIGTERM)  # recorded, not fatal, inside the context
        assert signals.poll() == "SIGTERM"
        assert signals.stopped_by == "SIGTERM"
