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
``str``, ``int``, ``float``, ``bool``, ``yaml`` (a YAML value) or ``path``
(``~`` expanded).

What reaches the templates follows the original Forgather: the spec's
``default`` is shown in ``--help`` only, and an option the user does not
give passes the value its *action* implies, when that is not ``None``:
``False`` for ``store_true``, ``True`` for ``store_false``, nothing for the
others (the template's own ``| default(...)`` decides). So a config with
``--tie-word-embeddings`` (``store_true``) always renders with
``tie_word_embeddings=False`` unless the flag is given.

Decisions a reader may question:

* An option the config declares *wins* over a command's built-in option of
  the same name (``model --dtype``, ``--batch-size``...): the built-in loses
  that option string, the config's spec parses it, and a value the user gives
  goes to both, the template variable and the command's own ``dest``
  (converted by the built-in's ``type``). The config was written for that
  option, and a command line that worked with the original must not stop
  with ``conflicting option string``.
* The spec's ``default`` is not passed, so a value in ``--help`` and the
  template's default can disagree; the original behaves so, and its configs
  are written for it (``{{ x | default(...) }}`` next to every option).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
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
    "path": os.path.expanduser,
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


_PREFIX = "dynamic_arg:"  # the parser's dest of a config option; never a built-in's dest


@dataclass
class DynamicOptions:
    """The options a config added to a command's parser (see :func:`add_dynamic_args`).

    Attributes:
        dests: template variable names, in the order the config declares them.
        implicit: values of options not given (``store_true`` → ``False``...).
        shadowed: variable name -> the built-in actions whose option strings
            its option took (their ``dest`` receives a value the user gives).
    """

    dests: list[str] = field(default_factory=list)
    implicit: dict[str, Any] = field(default_factory=dict)
    shadowed: dict[str, list[argparse.Action]] = field(default_factory=dict)

    def given(self, args: argparse.Namespace) -> dict[str, Any]:
        """The options the user gave, as template variables."""
        return {d: getattr(args, _PREFIX + d) for d in self.dests if hasattr(args, _PREFIX + d)}

    def values(self, args: argparse.Namespace) -> dict[str, Any]:
        """Template variables: the options given, else their implicit values, in spec order.

        Also copies each given value to the ``dest`` of the built-in options it
        shadows, and gives a built-in that lost every option string its default.
        """
        given = self.given(args)
        for dest, actions in self.shadowed.items():
            for action in actions:
                if dest in given:
                    setattr(args, action.dest, _as_builtin(action, given[dest]))
                elif not hasattr(args, action.dest):
                    setattr(args, action.dest, action.default)
        return {
            d: given[d] if d in given else self.implicit[d]
            for d in self.dests
            if d in given or d in self.implicit
        }


def _as_builtin(action: argparse.Action, value: Any) -> Any:
    """``value`` (parsed by the config's spec) in the type a built-in option expects."""
    if isinstance(value, str) and callable(action.type):
        try:
            return action.type(value)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            return value
    return value


def _take_option_strings(
    parser: argparse.ArgumentParser, names: list[str]
) -> list[argparse.Action]:
    """Remove ``names`` from the parser's existing options; return the actions that had them.

    An action left without option strings is removed from the parser (argparse
    would otherwise read it as a positional); its ``dest`` is filled in by
    :meth:`DynamicOptions.values`.
    """
    taken: list[argparse.Action] = []
    for name in names:
        action = parser._option_string_actions.pop(name, None)
        if action is None:
            continue
        action.option_strings = [s for s in action.option_strings if s != name]
        if action not in taken:
            taken.append(action)
    for action in taken:
        if not action.option_strings:
            action.container._remove_action(action)
    return taken


def add_dynamic_args(parser: argparse.ArgumentParser,
                     specs: list[dict[str, Any]]) -> DynamicOptions:  # fmt: skip
    """Add each spec as an option of ``parser`` (in a "config options" group).

    An option string the parser already has (a built-in option of the
    command) passes to the config's spec; see :class:`DynamicOptions`.

    Args:
        parser: the command's parser.
        specs: spec dicts (see :func:`normalize_specs`).

    Returns:
        The options added: their ``dest`` names (the template variables they
        set), implicit values and the built-in options they shadow.

    Raises:
        CLIError: a spec without ``names``, with an unknown type, or naming
            one option twice.
    """
    added = DynamicOptions()
    if not specs:
        return added
    group = parser.add_argument_group("options declared by the config (dynamic_args)")
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
        for name in names:
            if getattr(parser._option_string_actions.get(name), "dest", "").startswith(_PREFIX):
                raise CLIError(f"dynamic_args: {name} is declared twice")
        shadowed = _take_option_strings(parser, names)
        try:
            action = group.add_argument(*names, **kwargs)
        except (argparse.ArgumentError, TypeError, ValueError) as err:
            raise CLIError(f"dynamic_args {names[0]}: {err}") from None
        dest = action.dest
        if action.nargs != 0 and action.metavar is None:
            action.metavar = dest.upper()  # what argparse would show for `dest`
        action.dest = _PREFIX + dest
        if action.default is not None:  # store_true -> False, store_false -> True
            added.implicit[dest] = action.default
        action.default = argparse.SUPPRESS  # given or not: given() tells them apart
        added.dests.append(dest)
        if shadowed:
            added.shadowed[dest] = shadowed
    return added


def dynamic_values(args: argparse.Namespace, options: DynamicOptions) -> dict[str, Any]:
    """The template variables of the dynamic options (see :meth:`DynamicOptions.values`)."""
    return options.values(args)
