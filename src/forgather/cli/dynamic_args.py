"""A config's ``dynamic_args`` target as command-line options.

A config declares options for the commands that load it:

    dynamic_args: !dlist
        max_steps:
            names: "--max-steps"
            type: "int"
            help: "Stop after this many steps"
            default: 100

and ``forgather -t cfg.yaml pp --max-steps 10`` renders the config with the
template variable ``max_steps=10``. The variable name is argparse's ``dest``
(``--max-steps`` → ``max_steps``, or ``dest:`` when given). ``type`` is one of
``str``, ``int``, ``float``, ``bool``, ``yaml`` (a YAML value) or ``path``.

Decision a reader may question: an option the user does not give is *not*
passed to the templates (argparse ``SUPPRESS``), even when its spec has a
``default``. The template's own ``| default(...)`` decides the value, the
spec's default is shown in ``--help`` only, and a command without dynamic
options keeps the config it already loaded instead of rendering it again.
"""

from __future__ import annotations

import argparse
from typing import Any

from forgather.cli.errors import CLIError
from forgather.cli.values import parse_yaml_value


def _parse_bool(text: str) -> bool:
    value = parse_yaml_value(text)
    if not isinstance(value, bool):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


_TYPES = {
    "str": str,
    "path": str,
    "int": int,
    "float": float,
    "bool": _parse_bool,
    "yaml": parse_yaml_value,
}

# argparse keywords a spec may carry, besides names/type/default/help.
_PASSTHROUGH = ("choices", "nargs", "metavar", "dest", "action", "required", "const")


def normalize_specs(value: Any) -> list[dict[str, Any]]:
    """The built ``dynamic_args`` target as a list of spec dicts.

    Accepts a list of dicts (what ``!dlist`` builds) or a mapping of
    ``key -> spec`` (a spec without ``names`` then gets ``--key``).

    Raises:
        CLIError: the target is not a list/mapping of mappings.
    """
    if value is None:
        return []
    if isinstance(value, dict):
        items = []
        for key, spec in value.items():
            if not isinstance(spec, dict):
                raise CLIError(f"dynamic_args.{key}: expected a mapping, got {spec!r}")
            items.append({"names": "--" + str(key).replace("_", "-"), **spec})
        value = items
    if not isinstance(value, list | tuple) or not all(isinstance(s, dict) for s in value):
        raise CLIError("dynamic_args must build to a list of mappings (use !dlist)")
    return [dict(s) for s in value]


def add_dynamic_args(parser: argparse.ArgumentParser, specs: list[dict[str, Any]]) -> list[str]:
    """Add each spec as an option of ``parser`` (in a "config options" group).

    Args:
        parser: the command's parser.
        specs: spec dicts (see :func:`normalize_specs`).

    Returns:
        The ``dest`` names added (the template variables they set).

    Raises:
        CLIError: a spec without ``names``, with an unknown type, or clashing
            with an option the command already has.
    """
    if not specs:
        return []
    group = parser.add_argument_group("options declared by the config (dynamic_args)")
    dests = []
    for spec in specs:
        names = spec.get("names")
        if isinstance(names, str):
            names = [names]
        if not names or not all(isinstance(n, str) and n.startswith("-") for n in names):
            raise CLIError(f"dynamic_args: each spec needs option names like '--x', got {spec!r}")
        kwargs: dict[str, Any] = {k: spec[k] for k in _PASSTHROUGH if k in spec}
        if "type" in spec:
            type_ = spec["type"]
            if isinstance(type_, str):
                if type_ not in _TYPES:
                    raise CLIError(
                        f"dynamic_args {names[0]}: unknown type {type_!r} "
                        f"(one of {', '.join(_TYPES)})"
                    )
                type_ = _TYPES[type_]
            kwargs["type"] = type_
        help_text = str(spec.get("help", ""))
        if "default" in spec:
            help_text = f"{help_text} (default: {spec['default']})".strip()
        kwargs["help"] = help_text
        kwargs["default"] = argparse.SUPPRESS
        try:
            action = group.add_argument(*names, **kwargs)
        except (argparse.ArgumentError, TypeError, ValueError) as err:
            raise CLIError(f"dynamic_args {names[0]}: {err}") from None
        dests.append(action.dest)
    return dests


def dynamic_values(args: argparse.Namespace, dests: list[str]) -> dict[str, Any]:
    """The dynamic options the user actually gave, as template variables."""
    return {d: getattr(args, d) for d in dests if hasattr(args, d)}
