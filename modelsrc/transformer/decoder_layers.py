"""Decoder layers: the residual wiring around attention and feed-forward.

* :class:`PreLNLayer` (GPT-2, Llama): ``x + f(norm(x))`` for each sub-layer.
* :class:`PostLNLayer` (original Transformer): ``norm(x + f(x))``.
* :class:`DeepNetLayer` (Wang et al., 2022): ``norm(alpha * x + f(x))`` with
  ``alpha = (2N)^(1/4)`` for an N-layer decoder; pair it with
  :func:`deepnet_beta`-scaled initialisation (see ``init_weights.py``).

Every layer takes ``hidden_states`` first, returns a tensor, and passes the
remaining keyword arguments (mask, positions, cache, kernel options) to its
attention, which is what vLLM's pipeline parallelism requires.

Under autocast a pre-norm layer casts each norm's output to the autocast dtype
once, so the projections that read it (q, k, v; gate, up) share one copy
instead of each casting the float32 activations again (and their gradients
meet in one cast back in the backward pass).

Decision a reader may question: layers receive factories, not modules. A
layer calls ``attention_factory(layer_idx=...)`` itself, so one config entry
describes every layer while each gets its own weights and cache index.
"""

from collections.abc import Callable

import torch
from torch import nn


def autocast_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` in the autocast dtype when autocast is on for its device, else unchanged."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return x.to(torch.get_autocast_dtype(device_type))
    return x


def deepnet_alpha(num_hidden_layers: int) -> float:
    """Residual scale for a decoder-only DeepNet: ``(2N)^(1/4)``."""
    return (2 * num_hidden_layers) ** 0.25


def deepnet_beta(num_hidden_layers: int) -> float:
    """Init gain for value, output and feed-forward weights: ``(8N)^(-1/4)``."""
    return (8 * num_hidden_layers) ** -0.25


class PreLNLayer(nn.Module):
    """Pre-norm decoder layer.

    Args:
        attention_factory: Called as ``attention_factory(layer_idx=i)``.
        feedforward_factory: Returns the feed-forward block.
        norm_factory: Returns a norm over the model width (called twice).
        layer_idx: Index of this layer in the stack.
        dropout: Dropout on each sub-layer's output before the residual add.
    """

    def __init__(
        self,
        attention_factory: Callable[..., nn.Module],
        feedforward_factory: Callable[[], nn.Module],
        norm_factory: Callable[[], nn.Module],
        layer_idx: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_layernorm = norm_factory()
        self.self_attn = attention_factory(layer_idx=layer_idx)
        self.post_attention_layernorm = norm_factory()
        self.mlp = feedforward_factory()
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, **attention_kwargs) -> torch.Tensor:
        x = hidden_states
        attn_in = autocast_input(self.input_layernorm(x))
        x = x + self.dropout(self.self_attn(attn_in, **attention_kwargs))
        return x + self.dropout(self.mlp(autocast_input(self.post_attention_layernorm(x))))


class PostLNLayer(nn.Module):
    """Post-norm decoder layer; the model needs no final norm after it.

    Args: as :class:`PreLNLayer`.
    """

    def __init__(
        self,
        attention_factory: Callable[..., nn.Module],
        feedforward_factory: Callable[[], nn.Module],
        norm_factory: Callable[[], nn.Module],
        layer_idx: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.self_attn = attention_factory(layer_idx=layer_idx)
        self.attn_norm = norm_factory()
        self.mlp = feedforward_factory()
        self.mlp_norm = norm_factory()
        self.dropout = nn.Dropout(dropout)
        self.residual_scale = 1.0

    def forward(self, hidden_states: torch.Tensor, **attention_kwargs) -> torch.Tensor:
        x = hidden_states
        a = self.residual_scale
        x = self.attn_norm(a * x + self.dropout(self.self_attn(x, **attention_kwargs)))
        return self.mlp_norm(a * x + self.dropout(self.mlp(x)))


class DeepNetLayer(PostLNLayer):
    """Post-norm layer with the residual scaled by :func:`deepnet_alpha`.

    Args:
        num_hidden_layers: N, the depth of the decoder (sets alpha).
        Others: as :class:`PreLNLayer`.
    """

    def __init__(
        self,
        attention_factory: Callable[..., nn.Module],
        feedforward_factory: Callable[[], nn.Module],
        norm_factory: Callable[[], nn.Module],
        layer_idx: int,
        num_hidden_layers: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(attention_factory, feedforward_factory, norm_factory, layer_idx, dropout)
        self.residual_scale = deepnet_alpha(num_hidden_layers)

    def extra_repr(self) -> str:
        return f"alpha={self.residual_scale:.4g}"
