"""Position-wise feed-forward blocks: a plain MLP (GPT-2) and a gated one (SwiGLU, Llama).

Decision a reader may question: the activation is passed as a factory (a
callable returning a module, e.g. ``torch.nn.SiLU``) rather than a string, so a
config can swap in any activation without this file knowing its name. The
projection names (``gate_proj``, ``up_proj``, ``down_proj``) follow Llama so
tensor-parallel plans and checkpoint converters can rely on them.
"""

from collections.abc import Callable

import torch
from torch import nn

from .saved_activations import SwiGLUFunction


def _gelu_tanh() -> nn.Module:
    # GPT-2's "gelu_new": the tanh approximation of GELU.
    return nn.GELU(approximate="tanh")


class MLP(nn.Module):
    """``down_proj(act(up_proj(x)))`` with optional dropout on the output.

    Args:
        hidden_size: Model width (input and output features).
        intermediate_size: Width of the hidden projection.
        activation_factory: Returns the activation module; default tanh-GELU.
        bias: Whether the projections have biases.
        dropout: Dropout probability applied to the output.
    """

    def __init__(
        self,
        hidden_size: int,
        intermediate_size: int,
        activation_factory: Callable[[], nn.Module] | None = None,
        bias: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.act = (activation_factory or _gelu_tanh)()
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down_proj(self.act(self.up_proj(x))))


class GatedMLP(nn.Module):
    """``down_proj(act(gate_proj(x)) * up_proj(x))``: SwiGLU with the default SiLU.

    Args:
        hidden_size: Model width (input and output features).
        intermediate_size: Width of the gated hidden projection.
        activation_factory: Returns the gate activation; default ``nn.SiLU``.
        bias: Whether the projections have biases.
        dropout: Dropout probability applied to the output.
    """

    def __init__(
        self,
        hidden_size: int,
        intermediate_size: int,
        activation_factory: Callable[[], nn.Module] | None = None,
        bias: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.act = (activation_factory or nn.SiLU)()
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._saves_less_with_function(x):
            return self.dropout(
                SwiGLUFunction.apply(
                    x, self.gate_proj.weight, self.up_proj.weight, self.down_proj.weight
                )
            )
        return self.dropout(self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x)))

    def _saves_less_with_function(self, x: torch.Tensor) -> bool:
        """Train through :class:`SwiGLUFunction` (see ``saved_activations.py``): SiLU,
        plain bias-free projections, a backward to come, outside ``torch.compile``."""
        projections = (self.gate_proj, self.up_proj, self.down_proj)
        return (
            type(self.act) is nn.SiLU
            # Not when something wraps or replaces them (LoRA, quantisation, tensor parallel).
            and all(type(p) is nn.Linear and p.bias is None for p in projections)
            and all(type(p.weight) in (nn.Parameter, torch.Tensor) for p in projections)
            and torch.is_grad_enabled()
            and (x.requires_grad or self.gate_proj.weight.requires_grad)
            and not torch.compiler.is_compiling()
        )
