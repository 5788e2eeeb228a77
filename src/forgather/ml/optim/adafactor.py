"""Adafactor: Adam-like steps with factored second moments (Shazeer & Stern, 2018).

For a weight matrix of shape (m, n), Adam keeps two (m, n) moment tensors;
Adafactor keeps an (m,) row and an (n,) column running mean of the squared
gradient and rebuilds the second moment as their normalised outer product, so
the optimizer state of a matrix costs m + n floats instead of 2·m·n. Tensors
with fewer than two dimensions (biases, norm weights) keep a full second moment.

The decision a reader may question: the step size is the learning rate the
schedule gives (`lr`, required), not Adafactor's own "relative step"
(`1/sqrt(t)` times the parameter's RMS). That way the same warmup/cosine/WSD
schedules drive AdamW, SGD and Adafactor alike; `scale_parameter=True` brings the
per-tensor RMS scaling back when wanted. First-moment momentum is off by default
(`beta1=None`) because it would cost the memory Adafactor exists to save.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim import Optimizer

__all__ = ["Adafactor"]


class Adafactor(Optimizer):
    """Memory-lean Adam-style optimizer with factored second moments.

    Args:
        params: Parameters or parameter groups.
        lr: Step size (driven by the LR scheduler).
        eps: (eps1, eps2): eps1 is added to squared gradients (numerical floor);
            eps2 floors the parameter RMS when `scale_parameter` is on.
        clip_threshold: Updates whose RMS exceeds this are scaled down to it
            (the paper's update clipping, d = 1).
        decay_rate: Second-moment decay is `beta2_t = 1 - t ** decay_rate`, so
            early steps average over few gradients and later ones over ~t.
        beta1: Momentum coefficient; None keeps no first moment.
        weight_decay: Decoupled weight decay (AdamW-style), per unit of `lr`.
        scale_parameter: Multiply the step by max(eps2, RMS(parameter)).
        betas: The original Forgather's spelling: `betas[1]` caps the second-moment
            decay (`beta2_t = min(1 - t ** decay_rate, betas[1])`); `betas[0]` is
            unused, as there (no first moment). None: no cap.
        relative_step, bf16_stochastic_round: The original's options; only False
            is supported (a clear error otherwise).
        torch_compile, use_triton: The original's kernel choices; accepted, no effect.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-3,
        eps: tuple[float, float] = (1e-30, 1e-3),
        clip_threshold: float = 1.0,
        decay_rate: float = -0.8,
        beta1: float | None = None,
        weight_decay: float = 0.0,
        scale_parameter: bool = False,
        *,
        betas: tuple[float, float] | None = None,
        relative_step: bool = False,
        bf16_stochastic_round: bool = False,
        torch_compile: bool = False,
        use_triton: bool = True,
    ) -> None:
        for name, value, instead in (
            ("relative_step", relative_step, "drive the step size with an LR schedule"),
            ("bf16_stochastic_round", bf16_stochastic_round, "keep fp32 weights (bf16 autocast)"),
        ):
            if value:
                raise ValueError(f"Adafactor: {name}=True is not supported; {instead}")
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not -1.0 <= decay_rate < 0:
            raise ValueError(f"decay_rate must be in [-1, 0), got {decay_rate}")
        defaults = {
            "lr": lr,
            "eps": eps,
            "clip_threshold": clip_threshold,
            "decay_rate": decay_rate,
            "beta1": beta1,
            "weight_decay": weight_decay,
            "scale_parameter": scale_parameter,
            "beta2_cap": 1.0 if betas is None else float(betas[1]),
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """Take one optimization step; `closure` re-evaluates the loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)
        return loss

    def _update(self, param: torch.Tensor, group: dict) -> None:
        if param.grad.is_sparse:
            raise RuntimeError("Adafactor does not support sparse gradients")
        grad = param.grad.float()  # moments and the update are computed in fp32
        eps1, eps2 = group["eps"]
        state = self.state[param]
        factored = grad.dim() >= 2
        if not state:
            state["step"] = torch.zeros((), dtype=torch.float32)
            if factored:
                state["row_var"] = grad.new_zeros(grad.shape[:-1])  # (..., m)
                state["col_var"] = grad.new_zeros(grad.shape[:-2] + grad.shape[-1:])  # (..., n)
            else:
                state["var"] = torch.zeros_like(grad)
            if group["beta1"] is not None:
                state["momentum"] = torch.zeros_like(grad)

        state["step"] += 1
        beta2 = min(1.0 - state["step"].item() ** group["decay_rate"], group.get("beta2_cap", 1.0))
        sq_grad = grad.square().add_(eps1)
        if factored:
            row_var, col_var = state["row_var"], state["col_var"]
            row_var.lerp_(sq_grad.mean(dim=-1), 1.0 - beta2)  # (..., m)
            col_var.lerp_(sq_grad.mean(dim=-2), 1.0 - beta2)  # (..., n)
            # V ≈ outer(row, col) / mean(row); apply rsqrt of each factor separately
            # so no (m, n) second-moment tensor is ever materialised.
            row_factor = (row_var / row_var.mean(dim=-1, keepdim=True)).rsqrt_()
            col_factor = col_var.rsqrt()
            update = grad * row_factor.unsqueeze(-1) * col_factor.unsqueeze(-2)
        else:
            var = state["var"]
            var.lerp_(sq_grad, 1.0 - beta2)
            update = grad * var.rsqrt()

        rms = update.square().mean().sqrt()
        update.div_((rms / group["clip_threshold"]).clamp_(min=1.0))

        lr = group["lr"]
        if group["scale_parameter"]:
            lr = lr * max(eps2, param.float().square().mean().sqrt().item())
        if group["beta1"] is not None:
            update = state["momentum"].lerp_(update, 1.0 - group["beta1"])
        if group["weight_decay"] != 0:
            param.mul_(1.0 - group["lr"] * group["weight_decay"])
        param.add_(update.to(param.dtype), alpha=-lr)
