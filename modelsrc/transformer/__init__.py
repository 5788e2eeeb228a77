"""Transformer components that generated models copy in, one small file each.

Every file here imports only ``torch``, ``transformers`` and its siblings (with
relative imports), because a generated model directory holds verbatim copies
of the files it uses and must load where Forgather is not installed. Configs
name a component as ``.module:Name`` (for example ``.norms:RMSNorm``).

This ``__init__`` exists so the directory can also be imported as a package
from tests and notebooks; generated model directories do not need it.
"""
