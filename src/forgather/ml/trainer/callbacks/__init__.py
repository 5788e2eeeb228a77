"""Trainer callbacks: the protocol (`TrainerCallback`) and the ones that ship.

The trainer adds `DefaultFlowCallback`, `PeakMemoryCallback`, `JsonLogCallback`
and `TensorBoardCallback` (per `args.report_to`) and `ProgressCallback` (unless
`args.disable_tqdm`) by itself; pass others in `Trainer(callbacks=[...])`.
"""

from .base import CallbackHandler, DefaultFlowCallback, TrainerCallback
from .baseline import UnigramBaselineCallback
from .control import TrainerControlCallback, TrainingAborted
from .json_log import JsonLogCallback
from .peak_memory import PeakMemoryCallback, peak_rss_mib
from .progress import ProgressCallback
from .tensorboard import TensorBoardCallback
from .text_generation import TextGenerationCallback

__all__ = [
    "CallbackHandler",
    "DefaultFlowCallback",
    "JsonLogCallback",
    "PeakMemoryCallback",
    "ProgressCallback",
    "TensorBoardCallback",
    "TextGenerationCallback",
    "TrainerCallback",
    "TrainerControlCallback",
    "TrainingAborted",
    "UnigramBaselineCallback",
    "peak_rss_mib",
]
