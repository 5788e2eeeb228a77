"""Machine-learning parts of Forgather: models, data, optimisers, trainers.

Each subpackage lists its public names in its own ``__init__``; this package
imports nothing, so ``import forgather.ml.data`` does not load torch for
``forgather.ml.model`` and the reverse.
"""
