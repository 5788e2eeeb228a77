"""`make_re_multiopt`: a different optimizer per group of parameters, chosen by name patterns.

`Multiopt` steps several optimizers as one (for experiments such as Adafactor
on matrices and AdamW on the rest); its `param_groups` are theirs, so a
learning-rate schedule built on it drives all of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch.optim import Optimizer

__all__ = ["Multiopt", "make_re_multiopt"]


class Multiopt(Optimizer):
    """Several optimizers stepped together; state is saved per optimizer.

    Args:
        optimizers: The optimizers, each over its own parameters.
    """

    def __init__(self, optimizers: list[Optimizer]) -> None:
        self.optimizers = list(optimizers)
        groups = [group for opt in self.optimizers for group in opt.param_groups]
        super().__init__(groups, {})
        # Share the group dicts (Optimizer's constructor copies them): a schedule changing
        # `lr` here changes it in the optimizer that steps.
        self.param_groups = groups

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Step every optimizer."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for opt in self.optimizers:
            opt.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every optimizer's gradients."""
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        """Each optimizer's state dict, in order."""
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        for opt, state in zip(self.optimizers, state_dict["optimizers"], strict=True):
            opt.load_state_dict(state)


def make_re_multiopt(
    named_parameters: Iterable[tuple[str, torch.Tensor]],
    optimizer_map: Sequence[tuple[str, str]],
    factories: dict[str, Callable[[list], Optimizer]],
) -> Multiopt:
    """A `Multiopt` whose optimizers get the parameters whose names match their pattern.

    Args:
        named_parameters: `(name, parameter)` pairs (the trainer passes them).
        optimizer_map: `(regex, group name)` pairs; the first `re.search` match wins.
        factories: `group name -> factory(params)` building that group's optimizer.
    """
    groups: dict[str, list] = {name: [] for _, name in optimizer_map}
    for param_name, param in named_parameters:
        for pattern, group in optimizer_map:
            if re.search(pattern, param_name):
                groups[group].append((param_name, param))
                break
    return Multiopt([factories[group](params) for group, params in groups.items() if params])


make_re_multiopt.wants_named_parameters = True  # the trainer passes (name, parameter) pairs
