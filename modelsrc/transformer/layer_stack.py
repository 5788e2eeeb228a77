"""The stack of decoder layers: one ``nn.ModuleList`` and the loop over it.

Decision a reader may question: the stack is a bare ``nn.ModuleList`` held
directly by the base model (``model.layers``), not a module wrapping it.
vLLM's pipeline parallelism looks the list up by name on the base model and
replaces the layers another rank owns with identities, and tensor-parallel
plans address ``layers.*.self_attn.q_proj``; a wrapper would hide both. The
loop is therefore a function the base model calls.
"""

from collections.abc import Callable
from functools import partial

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

#: How layers are checkpointed unless the model was given its own function
#: (``activation_checkpointing_enable(kwargs)`` sets ``_gradient_checkpointing_func``).
default_checkpoint = partial(checkpoint, use_reentrant=False)


def layer_stack(layer_factory: Callable[..., nn.Module], num_hidden_layers: int) -> nn.ModuleList:
    """Build ``num_hidden_layers`` layers with ``layer_factory(layer_idx=i)``.

    Args:
        layer_factory: Returns one decoder layer for a given ``layer_idx``.
        num_hidden_layers: Number of layers.

    Returns:
        The layers, in order.
    """
    return nn.ModuleList(layer_factory(layer_idx=i) for i in range(num_hidden_layers))


def run_layers(
    layers: nn.ModuleList,
    hidden_states: torch.Tensor,
    checkpoint_fn: Callable[..., torch.Tensor] | None = None,
    all_hidden_states: list[torch.Tensor] | None = None,
    **layer_kwargs,
) -> torch.Tensor:
    """Apply ``layers`` in order.

    Args:
        layers: The stack.
        hidden_states: (B, T, D) input of the first layer.
        checkpoint_fn: If given, each layer runs as ``checkpoint_fn(layer,
            hidden_states, **layer_kwargs)`` (e.g. ``default_checkpoint``): its
            activations are recomputed in the backward pass instead of stored
            (saves memory, costs about one extra forward).
        all_hidden_states: If given, each layer's input is appended to it.
        **layer_kwargs: Passed to every layer (mask, positions, cache, ...).

    Returns:
        (B, T, D) output of the last layer.
    """
    for layer in layers:
        if all_hidden_states is not None:
            all_hidden_states.append(hidden_states)
        if checkpoint_fn is not None:
            hidden_states = checkpoint_fn(layer, hidden_states, **layer_kwargs)
        else:
            hidden_states = layer(hidden_states, **layer_kwargs)
    return hidden_states
