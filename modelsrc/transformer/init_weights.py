"""Weight initialisation by parameter-name regex.

A config lists rules as an ordered mapping from regex to an in-place init
function; the first regex that matches a parameter's name (``re.search``)
initialises it:

    init_weights: !partial:.init_weights:init_by_regex
        rules:
            'embed_tokens\\.weight$': !partial:torch.nn.init:normal_ {std: 0.02}
            'norm\\.weight$': !partial:torch.nn.init:ones_
            'bias$': !partial:torch.nn.init:zeros_
            'weight$': !partial:torch.nn.init:normal_ {std: 0.02}

Decision a reader may question: a parameter no rule matches is an error, not
left as PyTorch's default, so adding a component without thinking about its
initialisation fails loudly the first time the model is built. Names are
relative to the module being initialised (``layers.0.mlp.up_proj.weight`` in
the base model, ``lm_head.weight`` in the causal LM), so anchor regexes at
the end rather than the start.
"""

import math
import re
from collections.abc import Callable, Mapping

import torch

InitFn = Callable[[torch.Tensor], object]


def init_by_regex(name: str, param: torch.Tensor, rules: Mapping[str, InitFn]) -> None:
    """Initialise ``param`` with the first rule whose regex matches ``name``.

    Args:
        name: Dotted parameter name.
        param: The parameter, modified in place.
        rules: Ordered mapping of regex to init function.

    Raises:
        ValueError: If no rule matches.
    """
    for pattern, init in rules.items():
        if re.search(pattern, name):
            with torch.no_grad():
                init(param)
            return
    raise ValueError(f"no weight-init rule matches parameter {name!r}; rules: {list(rules)}")


def scaled_normal_(
    param: torch.Tensor, std: float = 0.02, num_hidden_layers: int = 1
) -> torch.Tensor:
    """Normal init with ``std / sqrt(2 * num_hidden_layers)``.

    GPT-2 uses it for the projections that write into the residual stream
    (attention ``o_proj`` and feed-forward ``down_proj``), so the residual's
    variance does not grow with depth.
    """
    return torch.nn.init.normal_(param, std=std / math.sqrt(2 * num_hidden_layers))
