"""``UnigramBaselineCallback``: is the model learning from context at all?

A model that ignores context can at best reach the unigram entropy of the data
(the cross-entropy of always predicting the token frequencies). This callback
computes that number once for the validation data and prints it beside every
validation loss, so a run shows at a glance how far below the baseline it is.
"""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from .base import TrainerCallback


class UnigramBaselineCallback(TrainerCallback):
    """Prints ``eval_loss`` next to the unigram entropy of ``dataset`` (nats per token).

    Args:
        dataset: a dataset of ``forgather.ml.data`` (it knows its token counts).
    """

    def __init__(self, dataset: Any) -> None:
        from forgather.ml.data.inspect import unigram_entropy

        self.entropy = unigram_entropy(dataset)
        self.last_eval_loss: float | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_loss" in metrics:
            self.last_eval_loss = float(metrics["eval_loss"])

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or self.last_eval_loss is None:
            return
        ratio = self.last_eval_loss / self.entropy
        tqdm.write(
            f"validation loss {self.last_eval_loss:.3f} nats/token vs unigram entropy "
            f"{self.entropy:.3f} nats/token ({ratio:.0%} of the context-free baseline)"
        )
