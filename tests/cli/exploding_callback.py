"""A callback that fails on purpose, for tests of how `forgather train` reports errors."""

from forgather.ml.trainer.callbacks import TrainerCallback


class ExplodingCallback(TrainerCallback):
    def __init__(self, at_step: int = 2):
        self.at_step = at_step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.at_step:
            raise RuntimeError(f"callback exploded at step {state.global_step}")
