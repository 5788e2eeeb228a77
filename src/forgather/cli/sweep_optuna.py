"""``forgather sweep --optuna N``: Optuna's TPE sampler chooses each trial's values.

    require_optuna()                       # a CLIError naming `pip install optuna` when missing
    source = OptunaSource(manifest, dims, count=20, seed=0, mode="min", score=..., words_for=...)
    TrialRunner(...).run(source)           # asks Optuna for a trial whenever a slot is free

A list dimension is categorical (its values as command-line text), ``uniform``
and ``loguniform`` are float ranges, ``int`` and ``logint`` integer ranges.
Sampled floats keep 4 significant digits, as in ``--random``.

Decision a reader may question: the study lives in memory and is rebuilt from
the manifest on every invocation (finished trials are added to it with their
scores; unfinished ones are asked again with the same values) rather than kept
in an Optuna storage file. The manifest is the one record of the sweep, and a
resumed search continues from exactly the trials it shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from forgather.cli.errors import CLIError
from forgather.cli.sweep_manifest import FINISHED, Manifest, TrialRecord
from forgather.cli.sweep_space import Dimension, format_value

MAX_REPEATS = 100  # a search that keeps proposing finished trials has exhausted its space


def require_optuna() -> None:
    """Raise a CLIError naming the install command when Optuna is missing."""
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise CLIError(
            "--optuna needs Optuna, which is not installed: pip install optuna"
        ) from None


def _distribution(dim: Dimension) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.distribution is None:
        return CategoricalDistribution([format_value(c) for c in dim.choices])
    function, low, high = dim.distribution
    if function in ("int", "logint"):
        return IntDistribution(int(low), int(high), log=function == "logint")
    return FloatDistribution(float(low), float(high), log=function == "loguniform")


def _value(dim: Dimension, param: Any) -> Any:
    """The trial value of an Optuna parameter."""
    if dim.distribution is None:
        return next(c for c in dim.choices if format_value(c) == param)
    if isinstance(param, float):
        return float(f"{param:.4g}")
    return param


def _param(dim: Dimension, value: Any) -> Any:
    """The Optuna parameter of a recorded trial value."""
    return format_value(value) if dim.distribution is None else value


class OptunaSource:
    """Trials asked of an Optuna study (a :class:`~forgather.cli.sweep_runner.TrialSource`).

    Args:
        manifest: the sweep's manifest; its trials over the same names seed the study.
        dims: the swept dimensions.
        count: the number of trials the search should have in all.
        seed: the TPE sampler's seed.
        mode: ``"min"`` or ``"max"``.
        score: a finished trial's score, or None.
        words_for: the command-line words of a trial's values.

    Attributes:
        trials: the search's trials, recorded and new.
    """

    def __init__(self, manifest: Manifest, dims: list[Dimension], count: int, seed: int, mode: str,
                 score: Callable[[TrialRecord], float | None],
                 words_for: Callable[[dict[str, Any]], list[str]]):  # fmt: skip
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.manifest, self.dims, self.score, self.words_for = manifest, dims, score, words_for
        self.study = optuna.create_study(
            direction="minimize" if mode == "min" else "maximize",
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
        self.distributions = {d.name: _distribution(d) for d in dims}
        self.trials: list[TrialRecord] = []
        self.rerun: list[TrialRecord] = []
        self.asked: dict[int, Any] = {}
        for trial in manifest.trials:
            if set(trial.values) != set(self.distributions):
                continue  # a trial of another search in the same directory
            self.trials.append(trial)
            if trial.status == FINISHED:
                self._add_finished(trial)
            else:
                self.rerun.append(trial)
        self.budget = max(0, count - (len(self.trials) - len(self.rerun)))

    def _params(self, trial: TrialRecord) -> dict[str, Any]:
        return {d.name: _param(d, trial.values[d.name]) for d in self.dims}

    def _add_finished(self, trial: TrialRecord) -> None:
        value = self.score(trial)
        state = self.optuna.trial.TrialState
        self.study.add_trial(self.optuna.trial.create_trial(
            params=self._params(trial), distributions=self.distributions, value=value,
            state=state.COMPLETE if value is not None else state.FAIL,
        ))  # fmt: skip

    def next(self) -> TrialRecord | None:
        if self.budget <= 0:
            return None
        self.budget -= 1
        if self.rerun:
            trial = self.rerun.pop(0)
            self.study.enqueue_trial(self._params(trial))
            self.asked[trial.id] = self.study.ask(self.distributions)
            return trial
        for _ in range(MAX_REPEATS):
            asked = self.study.ask(self.distributions)
            values = {d.name: _value(d, asked.params[d.name]) for d in self.dims}
            trial = self.manifest.trial_for(values, self.words_for(values))
            if trial.status != FINISHED:
                if trial not in self.trials:
                    self.trials.append(trial)
                self.asked[trial.id] = asked
                return trial
            self._tell(asked, trial)  # proposed again: its result is known
        return None

    def finished(self, trial: TrialRecord) -> None:
        asked = self.asked.pop(trial.id, None)
        if asked is not None:
            self._tell(asked, trial)

    def _tell(self, asked: Any, trial: TrialRecord) -> None:
        value = self.score(trial) if trial.status == FINISHED else None
        if value is None:
            self.study.tell(asked, state=self.optuna.trial.TrialState.FAIL)
        else:
            self.study.tell(asked, value)
