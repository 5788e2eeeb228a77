"""What a sweep varies: dimensions parsed from ``--grid``/``--set-grid``, and the trials they make.

    dim = parse_dimension("lr=1e-3,3e-3", "define")        # two choices, -D lr=...
    dim = parse_dimension("main.args.weight_decay=0,0.1", "set")
    dim = parse_dimension("lr=loguniform(1e-4,1e-2)", "define")   # --random / --optuna only
    grid_trials([dim_a, dim_b])              # every combination, the first dimension slowest
    random_trials(dims, count=8, seed=0)     # 8 samples, the same for the same seed

A value list is split at its top-level commas (``layers=[1,2],[2,2]`` is two
lists) and each item is read like a ``-D`` value (YAML 1.2 core,
:mod:`forgather.cli.values`). ``linspace(a,b,n)`` and ``logspace(a,b,n)`` are
lists too; ``uniform(a,b)``, ``loguniform(a,b)``, ``int(a,b)`` and
``logint(a,b)`` (bounds included) are ranges to sample from.

Decision a reader may question: a trial is identified by its assignments as
command-line words (``-D lr=0.001``), each value written back in one canonical
form (:func:`format_value`), not by its position in the plan. A resumed sweep
recognises a finished trial even when the grid grew a value or the options
were given in another order, and a random sample drawn again from the same
seed names the same trials: trial ``i`` of a random search depends only on the
seed and ``i`` (and sampled floats keep 4 significant digits, so the table
shows what the command line would say).
"""

from __future__ import annotations

import itertools
import math
import random
import re
from dataclasses import dataclass
from typing import Any

from forgather.cli.errors import CLIError
from forgather.cli.values import parse_yaml_value

#: How a dimension reaches the trial's command line: ``-D NAME=V`` or ``--set PATH=V``.
KIND_FLAGS = {"define": "-D", "set": "--set"}

_FUNCTION = re.compile(r"^\s*(linspace|logspace|uniform|loguniform|int|logint)\s*\((.*)\)\s*$")
_RANGES = ("uniform", "loguniform", "int", "logint")


@dataclass(frozen=True)
class Dimension:
    """One swept name and the values it may take.

    Attributes:
        name: the ``-D`` variable or the ``--set`` path.
        kind: ``"define"`` or ``"set"``.
        spec: the text after ``=``, as given (stored in the manifest).
        choices: the values of a list, in order; empty for a range.
        distribution: ``(function, low, high)`` of a range, else ``None``.
    """

    name: str
    kind: str
    spec: str
    choices: tuple[Any, ...] = ()
    distribution: tuple[str, float, float] | None = None

    @property
    def flag(self) -> str:
        return KIND_FLAGS[self.kind]

    @property
    def log_scale(self) -> bool:
        """Whether the values are spread on a log scale (plots use a log axis)."""
        if self.distribution is not None:
            return self.distribution[0].startswith("log")
        return self.spec.lstrip().startswith("logspace")

    def sample(self, rng: random.Random) -> Any:
        """One value drawn with ``rng``: a choice, or a point of the range (4 significant digits)."""
        if self.distribution is None:
            return self.choices[rng.randrange(len(self.choices))]
        function, low, high = self.distribution
        if function == "int":
            return rng.randint(int(low), int(high))
        if function == "logint":
            value = round(math.exp(rng.uniform(math.log(low), math.log(high))))
            return max(int(low), min(int(high), value))
        if function == "loguniform":
            value = math.exp(rng.uniform(math.log(low), math.log(high)))
        else:
            value = rng.uniform(low, high)
        return float(f"{value:.4g}")


def split_items(text: str) -> list[str]:
    """Split at commas outside brackets, braces, parentheses and quotes.

    >>> split_items("1e-3, [1,2], 'a,b'")
    ['1e-3', '[1,2]', "'a,b'"]
    """
    items, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return items


def parse_dimension(text: str, kind: str) -> Dimension:
    """A dimension from ``NAME=V1,V2,...`` or ``NAME=function(args)``.

    Args:
        text: the option's value.
        kind: ``"define"`` (``--grid``) or ``"set"`` (``--set-grid``).

    Raises:
        CLIError: no ``=``, an empty or repeated value, a bad range.
    """
    option = "--grid" if kind == "define" else "--set-grid"
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name or not spec.strip():
        raise CLIError(f"{option} expects NAME=V1,V2,... or NAME=uniform(LOW,HIGH), got {text!r}")
    match = _FUNCTION.match(spec)
    if match:
        return _function_dimension(name, kind, spec, match[1], match[2], option)
    choices = []
    for item in split_items(spec):
        if not item:
            raise CLIError(f"{option} {name}: an empty value in {spec!r}")
        value = parse_yaml_value(item)
        if any(format_value(value) == format_value(c) for c in choices):
            raise CLIError(f"{option} {name}: {item} is listed twice")
        choices.append(value)
    return Dimension(name, kind, spec, tuple(choices))


def _function_dimension(name: str, kind: str, spec: str, function: str, args: str,
                        option: str) -> Dimension:  # fmt: skip
    values = [parse_yaml_value(a) for a in split_items(args)]
    usage = f"{function}(LOW,HIGH{',COUNT' if function in ('linspace', 'logspace') else ''})"
    if len(values) != (3 if function.endswith("space") else 2) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    ):
        raise CLIError(f"{option} {name}: expected {usage} with numbers, got {spec!r}")
    low, high = values[0], values[1]
    if low > high or (function.startswith("log") and low <= 0):
        raise CLIError(f"{option} {name}: {spec!r} needs LOW <= HIGH" + (
            " and LOW > 0 (a log scale)" if function.startswith("log") else ""))  # fmt: skip
    if function in _RANGES:
        if function.endswith("int") and (low != int(low) or high != int(high)):
            raise CLIError(f"{option} {name}: {function}() bounds must be integers, got {spec!r}")
        return Dimension(name, kind, spec, distribution=(function, low, high))
    count = values[2]
    if not isinstance(count, int) or count < 1:
        raise CLIError(f"{option} {name}: the COUNT of {function}() must be a positive integer")
    if function == "linspace":
        points = [low + (high - low) * i / max(count - 1, 1) for i in range(count)]
    else:
        a, b = math.log10(low), math.log10(high)
        points = [10 ** (a + (b - a) * i / max(count - 1, 1)) for i in range(count)]
    return Dimension(name, kind, spec, tuple(float(f"{p:.4g}") for p in points))


def format_value(value: Any) -> str:
    """``value`` as a command-line value that reads back as itself (YAML 1.2 core).

    >>> [format_value(v) for v in (1e-3, 8, True, None, "adamw", "no", [1, "a b"])]
    ['0.001', '8', 'true', 'null', 'adamw', 'no', '[1, "a b"]']
    >>> format_value("true"), format_value("3")
    ('"true"', '"3"')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, str):
        try:
            plain = parse_yaml_value(value) == value and value == value.strip() and "," not in value
        except CLIError:
            plain = False
        return value if plain and value else _quote(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_nested(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_nested(k)}: {_nested(v)}" for k, v in value.items()) + "}"
    raise CLIError(f"cannot write {value!r} ({type(value).__name__}) as a command-line value")


def _nested(value: Any) -> str:
    return _quote(value) if isinstance(value, str) else format_value(value)


def _quote(text: str) -> str:
    import json

    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def assignment(dim: Dimension, value: Any) -> list[str]:
    """The command-line words that give ``dim`` the value ``value``."""
    return [dim.flag, f"{dim.name}={format_value(value)}"]


def grid_trials(dims: list[Dimension]) -> list[dict[str, Any]]:
    """Every combination of the dimensions' choices (the last dimension varies fastest).

    Raises:
        CLIError: a dimension is a range (it has no grid).
    """
    for dim in dims:
        if dim.distribution is not None:
            raise CLIError(
                f"{dim.name}={dim.spec} is a range to sample from: add --random N or --optuna N"
            )
    return [dict(zip([d.name for d in dims], combo, strict=True))
            for combo in itertools.product(*(d.choices for d in dims))]  # fmt: skip


def random_trials(dims: list[Dimension], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` trials drawn with ``seed``.

    When every dimension is a list, the grid is shuffled and the first
    ``count`` combinations are taken (no trial twice; at most the whole grid).
    Otherwise trial ``i`` draws each dimension from ``Random(f"{seed}:{i}")``,
    so asking for more trials later keeps the first ones.
    """
    if all(d.distribution is None for d in dims):
        trials = grid_trials(dims)
        random.Random(seed).shuffle(trials)
        return trials[:count]
    out = []
    for i in range(count):
        rng = random.Random(f"{seed}:{i}")
        out.append({d.name: d.sample(rng) for d in dims})
    return out
