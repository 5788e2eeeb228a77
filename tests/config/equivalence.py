"""Compare what ``construct()`` returns with what ``build`` returns: values *and* sharing."""

from __future__ import annotations

from typing import Any

_ATOMS = (int, float, str, bytes, bool, type(None))


def same_structure(a: Any, b: Any, pairs: dict[int, int] | None = None) -> bool:
    """Equal values, and object identity maps one-to-one between the two results."""
    pairs = {} if pairs is None else pairs
    if isinstance(a, _ATOMS) or isinstance(b, _ATOMS):
        return a == b and type(a) is type(b)
    if id(a) in pairs:
        return pairs[id(a)] == id(b)
    if id(b) in pairs.values():
        return False
    pairs[id(a)] = id(b)
    if isinstance(a, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same_structure(x, y, pairs) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and list(a) == list(b)
            and all(same_structure(a[k], b[k], pairs) for k in a)
        )
    if callable(a) and not isinstance(a, type) and hasattr(a, "_node"):  # a build Partial
        return callable(b)
    if hasattr(a, "__dict__") and not isinstance(a, type):
        public = [(k, v) for k, v in vars(a).items() if not k.startswith("_")]
        others = [(k, v) for k, v in vars(b).items() if not k.startswith("_")]
        return (
            type(a) is type(b)
            and [k for k, _ in public] == [k for k, _ in others]
            and all(
                same_structure(x, y, pairs) for (_, x), (_, y) in zip(public, others, strict=True)
            )
        )
    return a == b


def construct(cfg, target=None, **context_vars):
    namespace: dict[str, Any] = {}
    exec(compile(cfg.to_python(target), f"<generated {cfg.name}>", "exec"), namespace)
    return namespace["construct"](**context_vars)
