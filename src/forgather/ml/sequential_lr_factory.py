"""`sequential_lr_factory` at the path some original Forgather configs name.

Defined in `forgather.ml.optim.sequential_lr_factory` (the original's other path).
"""

from forgather.ml.optim.sequential_lr_factory import sequential_lr_factory

__all__ = ["sequential_lr_factory"]
