"""The ``--dtype`` values of ``model`` and ``inf server``: one table of names, the server's.

    check_dtype("bf16")                         # 'bfloat16'
    check_dtype("auto", "-T/--dtype", auto=True)  # 'auto'
    check_dtype("bfloat17")                     # UsageError: --dtype: unknown dtype 'bfloat17'; ...

Decision a reader may question: the names are checked when the command runs,
not by argparse, because the table (``forgather.serve.loading``) maps each name
to a ``torch.dtype`` and importing it imports torch, which parsing the command
line must not (``forgather --help`` stays fast); both commands import torch
anyway. Sharing that table keeps the names the two commands accept the same.
"""

from __future__ import annotations

from forgather.cli.errors import UsageError


def dtype_names(auto: bool = False) -> list[str]:
    """The accepted names, sorted (``auto``, as saved, only with ``auto``)."""
    from forgather.serve.loading import DTYPES  # imports torch: the server's own table

    return sorted(name for name in DTYPES if auto or name != "auto")


def check_dtype(value: str, option: str = "--dtype", auto: bool = False) -> str:
    """The torch name of dtype ``value`` (``bf16`` -> ``bfloat16``; ``auto`` kept when allowed).

    Args:
        value: What the user gave.
        option: The option's spelling, for the message.
        auto: Whether ``auto`` (the weights' saved dtype) is accepted.

    Raises:
        UsageError: ``value`` names no dtype; the message lists those that do.
    """
    from forgather.serve.loading import DTYPES

    names = dtype_names(auto)
    if value not in names:
        raise UsageError(f"{option}: unknown dtype {value!r}; choose from {', '.join(names)}")
    dtype = DTYPES[value]
    return dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")
