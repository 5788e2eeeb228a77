"""Command-line values (``-D``, ``--set``, dynamic options of type ``bool``/``yaml``) as YAML 1.2.

    parse_yaml_value("3e-4")   # 0.0003
    parse_yaml_value("no")     # 'no'   (YAML 1.1 would say False)
    parse_yaml_value("0o17")   # 15
    parse_yaml_value("1_000")  # '1_000'

Decision a reader may question: these values follow the YAML 1.2 *core*
schema, not PyYAML's YAML 1.1 rules that the config files are read with. On a
command line ``--set main.args.eval_strategy=no`` means the string ``no``; 1.1
turns ``no``/``yes``/``on``/``off`` into booleans, ``1_000`` into 1000 and
``2024-01-01`` into a date, and misses ``3e-4`` (a float needs a dot in 1.1).
Only ``true``/``True``/``TRUE``/``false``/... are booleans, ``null``/``~``/empty
is null, integers are decimal, ``0o`` octal or ``0x`` hexadecimal, floats
include ``.inf`` and ``.nan``; every other plain scalar is a string.
"""

from __future__ import annotations

import functools
import math
import re

from forgather.cli.errors import CLIError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import Any

_STD = "tag:yaml.org,2002:"

# The YAML 1.2 core schema's regular expressions (spec 1.2.2, section 10.3.2),
# each with the first characters a matching scalar can start with (PyYAML's index).
_CORE_RESOLVERS = (
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),  # "": the empty scalar
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
)


def _int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)  # "017" is seventeen in YAML 1.2, not fifteen


def _float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


@functools.cache
def _core_loader() -> type:
    """A ``yaml.SafeLoader`` subclass that resolves plain scalars by the 1.2 core schema."""
    import yaml

    class Core12Loader(yaml.SafeLoader):
        pass

    # Of PyYAML's 1.1 resolvers keep only "<<" merge keys; the scalar types are replaced.
    Core12Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag == _STD + "merge"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for name, pattern, first in _CORE_RESOLVERS:
        Core12Loader.add_implicit_resolver(_STD + name, re.compile(pattern), list(first))

    def scalar(convert):
        return lambda loader, node: convert(loader.construct_scalar(node))

    Core12Loader.add_constructor(_STD + "null", scalar(lambda text: None))
    Core12Loader.add_constructor(_STD + "bool", scalar(lambda text: text.lower() == "true"))
    Core12Loader.add_constructor(_STD + "int", scalar(_int))
    Core12Loader.add_constructor(_STD + "float", scalar(_float))
    return Core12Loader


def parse_yaml_value(text: str) -> Any:
    """A command-line value as YAML 1.2 core (``3e-4`` → 0.0003, ``[1, 2]`` → list, ``''`` → ``''``).

    Raises:
        CLIError: the text is not valid YAML.
    """
    if text == "":
        return ""
    import yaml

    try:
        return yaml.load(text, Loader=_core_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise CLIError(f"cannot parse {text!r} as a YAML value: {err}") from None


def int_at_least(minimum: int):
    """An argparse ``type``: an integer of at least ``minimum`` (else a usage error naming it)."""
    import argparse

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def non_negative_float(text: str) -> float:
    """An argparse ``type``: a finite number, 0 or more."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number, 0 or more, got {text}")
    return value
