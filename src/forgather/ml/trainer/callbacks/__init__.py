"""Trainer callbacks: the protocol (`TrainerCallback`) and the ones that ship.

The trainer adds `DefaultFlowCallback`, `PeakMemoryCallback`, `JsonLogCallback`
and `TensorBoardCallback` (per `args.report_to`) and `ProgressCallback` (unless
`args.disable_tqdm`) by itself; pass others in `Trainer(callbacks=[...])`. A
callback given of a default's class (or a subclass of it) replaces that default.

The original Forgather's callbacks (`InfoCallback`, `JsonLogger`, `TBLogger`,
`PeakMemory`, `TextgenCallback`) are here under their names (`original.py`).
"""

from .base import CallbackHandler, DefaultFlowCallback, TrainerCallback
from .baseline import UnigramBaselineCallback
from .control import TrainerControlCallback, TrainingAborted
from .json_log import JsonLogCallback
from .original import InfoCallback, JsonLogger, PeakMemory, TBLogger, TextgenCallback
from .peak_memory import PeakMemoryCallback, peak_rss_mib
from .progress import ProgressCallback
from .tensorboard import TensorBoardCallback
from .text_generation import TextGenerationCallback

__all__ = [
    "CallbackHandler",
    "DefaultFlowCallback",
    "InfoCallback",
    "JsonLogger",
    "PeakMemory",
    "TBLogger",
    "TextgenCallback",
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
