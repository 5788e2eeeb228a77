"""`make_grouped_optimizer`: one optimizer, its parameter groups chosen by name patterns.

The trainer hands a factory marked `wants_named_parameters` the model's
`(name, parameter)` pairs; each is put in the group of the first regular
expression (`re.search`) in `group_map` that matches its name, and that
group gets its options from `group_config`. A parameter that matches no
pattern is left out of the optimizer (as in the original); the log says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

__all__ = ["make_grouped_optimizer", "make_regex_optimizer_groups"]

logger = logging.getLogger(__name__)


def make_regex_optimizer_groups(
    named_parameters: Iterable[tuple[str, torch.Tensor]],
    group_map: Sequence[tuple[str, str]],
    group_config: dict[str, dict[str, Any]],
    debug: bool = False,
) -> list[dict[str, Any]]:
    """Parameter groups `{"params": [(name, p), ...], **group_config[group]}`, in `group_map` order.

    Args:
        named_parameters: `(name, parameter)` pairs.
        group_map: `(regex, group name)` pairs; the first match wins.
        group_config: Optimizer options per group name.
        debug: Log which parameters went where.
    """
    groups: dict[str, list[tuple[str, torch.Tensor]]] = {name: [] for _, name in group_map}
    for param_name, param in named_parameters:
        for pattern, group in group_map:
            if re.search(pattern, param_name):
                groups[group].append((param_name, param))
                break
        else:
            logger.warning("no optimizer group matches %s: it is not trained", param_name)
    if debug:
        for group, params in groups.items():
            logger.info("optimizer group %s: %s", group, [n for n, _ in params])
    return [{"params": params, **group_config[group]} for group, params in groups.items()]


def make_grouped_optimizer(
    named_parameters: Iterable[tuple[str, torch.Tensor]],
    opt_ctor: Callable[..., torch.optim.Optimizer],
    group_map: Sequence[tuple[str, str]],
    group_config: dict[str, dict[str, Any]],
    opt_args: Sequence[Any] | None = None,
    opt_kwargs: dict[str, Any] | None = None,
    debug: bool = False,
) -> torch.optim.Optimizer:
    """`opt_ctor(groups, *opt_args, **opt_kwargs)` with groups from `make_regex_optimizer_groups`."""
    groups = make_regex_optimizer_groups(named_parameters, group_map, group_config, debug=debug)
    return opt_ctor(groups, *(opt_args or ()), **(opt_kwargs or {}))


make_grouped_optimizer.wants_named_parameters = True  # the trainer passes (name, parameter) pairs
