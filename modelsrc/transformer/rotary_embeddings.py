"""Rotary position embeddings (RoPE), with optional frequency scaling.

Scaling follows Hugging Face's ``rope_parameters`` (``rope_type`` ``default``,
``linear``, ``llama3``, ``dynamic`` or ``yarn``), so weights converted from a
transformers checkpoint give the same rotations; the older ``llama3_scaling``
argument is kept for the Llama template.

RoPE rotates each (even, odd-half) channel pair of queries and keys by an angle
proportional to the token's position, so the query-key dot product depends
only on their relative position. Channels are paired as (i, i + head_dim/2)
("rotate half"), the layout of Llama checkpoints.

Decision a reader may question: the module holds no buffers; inverse
frequencies and the cos/sin tables are computed from ``position_ids`` on each
forward. The base model computes them once per forward with :meth:`RotaryEmbedding.tables`
(when its layers share one rotary module, as the templates build them) and
hands them to every layer; a layer given none computes its own. In exchange
the module works unchanged on the ``meta`` device, after ``from_pretrained``,
and with packed sequences whose positions restart at 0.
"""

import math

import torch
from torch import nn


def llama3_inv_freq(
    inv_freq: torch.Tensor,
    factor: float,
    low_freq_factor: float,
    high_freq_factor: float,
    original_max_position_embeddings: int,
) -> torch.Tensor:
    """Rescale RoPE inverse frequencies as Llama 3.1 does for long contexts.

    Wavelengths longer than ``original_max_position_embeddings / low_freq_factor``
    are stretched by ``factor``; shorter than ``.../high_freq_factor`` are kept;
    in between, the two are blended linearly in ``original / wavelength``.

    Args:
        inv_freq: (head_dim/2,) unscaled inverse frequencies.
        factor: Context extension factor for the low frequencies.
        low_freq_factor: Divides the original context to get the long-wavelength limit.
        high_freq_factor: Divides the original context to get the short-wavelength limit.
        original_max_position_embeddings: Context length the model was trained with.

    Returns:
        (head_dim/2,) scaled inverse frequencies.
    """
    wavelen = 2 * math.pi / inv_freq
    low_freq_wavelen = original_max_position_embeddings / low_freq_factor
    high_freq_wavelen = original_max_position_embeddings / high_freq_factor
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (original_max_position_embeddings / wavelen - low_freq_factor) / (
        high_freq_factor - low_freq_factor
    )
    blended = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(is_medium, blended, scaled)


#: ``rope_type`` values :func:`scaled_inv_freq` implements.
ROPE_TYPES = ("default", "linear", "llama3", "dynamic", "yarn")


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def _yarn_inv_freq(
    inv_freq: torch.Tensor, dim: int, base: float, params: dict
) -> tuple[torch.Tensor, float]:
    """YaRN: blend interpolated and original frequencies over a ramp of dimensions."""
    factor = params["factor"]
    original = params["original_max_position_embeddings"]
    attention_factor = params.get("attention_factor")
    if attention_factor is None:
        mscale, mscale_all_dim = params.get("mscale"), params.get("mscale_all_dim")
        if mscale and mscale_all_dim:
            attention_factor = _yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all_dim)
        else:
            attention_factor = _yarn_mscale(factor)
    beta_fast, beta_slow = params.get("beta_fast") or 32, params.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return dim * math.log(original / (rotations * 2 * math.pi)) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if params.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # avoid dividing by zero
    ramp = (
        (torch.arange(dim // 2, dtype=torch.float32, device=inv_freq.device) - low) / (high - low)
    ).clamp(0, 1)
    keep = 1 - ramp  # 1: keep the original frequency (extrapolate), 0: interpolate
    return inv_freq / factor * (1 - keep) + inv_freq * keep, float(attention_factor)


def scaled_inv_freq(
    head_dim: int,
    rope_theta: float,
    rope_parameters: dict | None,
    seq_len: int,
    device: torch.device,
    max_position_embeddings: int | None = None,
) -> tuple[torch.Tensor, float]:
    """Inverse frequencies and the cos/sin multiplier for Hugging Face's ``rope_parameters``.

    Args:
        head_dim: Rotated channels per head.
        rope_theta: Base, unless ``rope_parameters`` has ``rope_theta``.
        rope_parameters: ``{"rope_type": ..., "factor": ..., ...}`` or None (plain RoPE).
        seq_len: Longest position + 1 in this call (``dynamic`` grows its base beyond
            ``original_max_position_embeddings``, else ``max_position_embeddings``
            as in Hugging Face).
        device: Where to compute.
        max_position_embeddings: The model's context length.

    Returns:
        (head_dim/2,) float32 inverse frequencies and the attention factor (1.0 except YaRN).
    """
    params = dict(rope_parameters or {})
    rope_type = params.get("rope_type", params.get("type", "default"))
    base = params.get("rope_theta", rope_theta)
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64, device=device).float() / head_dim
    if rope_type == "dynamic":
        original = params.get("original_max_position_embeddings", max_position_embeddings)
        if seq_len > original:
            factor = params["factor"]
            base = base * ((factor * seq_len / original) - (factor - 1)) ** (
                head_dim / (head_dim - 2)
            )
    inv_freq = 1.0 / (base**exponents)
    if rope_type == "linear":
        inv_freq = inv_freq / params["factor"]
    elif rope_type == "llama3":
        inv_freq = llama3_inv_freq(
            inv_freq,
            params["factor"],
            params["low_freq_factor"],
            params["high_freq_factor"],
            params["original_max_position_embeddings"],
        )
    elif rope_type == "yarn":
        return _yarn_inv_freq(inv_freq, head_dim, base, params)
    return inv_freq, 1.0


def check_rope_parameters(rope_parameters: dict | None) -> None:
    """Raise ValueError for a RoPE variant this module does not implement."""
    params = rope_parameters or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        raise ValueError(
            f"RoPE type {rope_type!r} is not supported (supported: {', '.join(ROPE_TYPES)})"
        )
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError("partial rotary embeddings (partial_rotary_factor < 1) are not supported")


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the two halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: float) -> torch.Tensor:
    """``x * cos + sign * rotate_half(x) * sin`` in four in-place half-width ops.

    ``cos``/``sin`` are the half-width tables (..., hd/2); ``sign`` -1 rotates back.
    """
    x1, x2 = x.chunk(2, dim=-1)
    out = torch.empty_like(x)
    o1, o2 = out.chunk(2, dim=-1)
    torch.mul(x1, cos, out=o1)
    o1.addcmul_(x2, sin, value=-sign)
    torch.mul(x2, cos, out=o2)
    o2.addcmul_(x1, sin, value=sign)
    return out


class _Rotate(torch.autograd.Function):
    """RoPE whose backward is the inverse rotation: saves only the tables, two passes each way.

    Autograd through ``x * cos + rotate_half(x) * sin`` takes about five
    full-size passes forward and again backward (negation, concatenation,
    two products, a sum).
    """

    @staticmethod
    def forward(ctx, x, cos, sin):
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin, 1.0)

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        return _rotate(grad, cos, sin, -1.0), None, None


class RotaryEmbedding(nn.Module):
    """Applies RoPE to queries and keys inside attention.

    Args:
        head_dim: Size of each attention head (even).
        rope_theta: Base of the geometric frequency progression.
        llama3_scaling: ``None``, or a dict with ``factor``, ``low_freq_factor``,
            ``high_freq_factor`` and ``original_max_position_embeddings``
            (see :func:`llama3_inv_freq`).
        rope_parameters: ``None``, or Hugging Face's ``rope_parameters`` dict
            (``rope_type`` one of :data:`ROPE_TYPES`; its ``rope_theta``, when
            present, replaces ``rope_theta``). Exclusive with ``llama3_scaling``.
        max_position_embeddings: Context length; ``dynamic`` scaling starts beyond it.
    """

    def __init__(
        self,
        head_dim: int,
        rope_theta: float = 10000.0,
        llama3_scaling: dict | None = None,
        rope_parameters: dict | None = None,
        max_position_embeddings: int | None = None,
    ) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE, got {head_dim}")
        if llama3_scaling and rope_parameters:
            raise ValueError("give llama3_scaling or rope_parameters, not both")
        check_rope_parameters(rope_parameters)
        self.head_dim = head_dim
        self.rope_theta = rope_theta
        self.llama3_scaling = dict(llama3_scaling) if llama3_scaling else None
        self.rope_parameters = dict(rope_parameters) if rope_parameters else None
        self.max_position_embeddings = max_position_embeddings

    def inv_freq(self, device: torch.device) -> torch.Tensor:
        """(head_dim/2,) float32 inverse frequencies, scaled if configured."""
        exponents = torch.arange(0, self.head_dim, 2, dtype=torch.int64, device=device).float()
        inv_freq = 1.0 / (self.rope_theta ** (exponents / self.head_dim))
        if self.llama3_scaling is not None:
            inv_freq = llama3_inv_freq(inv_freq, **self.llama3_scaling)
        return inv_freq

    def tables(
        self, position_ids: torch.Tensor, dtype: torch.dtype, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin, (B|1, 1, T, hd) in ``dtype``, for ``position_ids`` (B|1, T).

        Computed in float32 (scaled by YaRN's attention factor), then cast.
        """
        if self.rope_parameters is None:
            inv_freq, attention_factor = self.inv_freq(device), 1.0
        else:
            dynamic = self.rope_parameters.get("rope_type") == "dynamic"
            # Only dynamic NTK depends on the length (and pays for a device sync to read it).
            seq_len = int(position_ids.max()) + 1 if dynamic else 0
            inv_freq, attention_factor = scaled_inv_freq(
                self.head_dim,
                self.rope_theta,
                self.rope_parameters,
                seq_len,
                device,
                self.max_position_embeddings,
            )
        freqs = position_ids.to(device)[..., None].float() * inv_freq  # (B, T, hd/2)
        angles = torch.cat((freqs, freqs), dim=-1)  # (B, T, hd)
        cos, sin = angles.cos(), angles.sin()
        if attention_factor != 1.0:
            cos, sin = cos * attention_factor, sin * attention_factor
        # (B, 1, T, hd): broadcast over heads
        return cos.to(dtype).unsqueeze(1), sin.to(dtype).unsqueeze(1)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        position_ids: torch.Tensor,
        tables: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate ``query`` (B, Hq, T, hd) and ``key`` (B, Hkv, T, hd) by ``position_ids`` (B|1, T).

        ``tables``: this module's :meth:`tables` for ``position_ids``, when already computed.
        """
        if tables is None:
            tables = self.tables(position_ids, query.dtype, query.device)
        cos, sin = (t.to(query.dtype) for t in tables)
        training = torch.is_grad_enabled() and (query.requires_grad or key.requires_grad)
        if training and not torch.compiler.is_compiling():
            # Identical values up to rounding; inference keeps the reference formula below
            # (bit-identical to earlier versions), compiled code leaves fusion to the compiler.
            half = cos.shape[-1] // 2
            cos, sin = cos[..., :half], sin[..., :half]
            return _Rotate.apply(query, cos, sin), _Rotate.apply(key, cos, sin)
        query = query * cos + rotate_half(query) * sin
        key = key * cos + rotate_half(key) * sin
        return query, key

    def extra_repr(self) -> str:
        scaling = f", llama3_scaling={self.llama3_scaling}" if self.llama3_scaling else ""
        if self.rope_parameters:
            scaling = f", rope_parameters={self.rope_parameters}"
        return f"head_dim={self.head_dim}, rope_theta={self.rope_theta}{scaling}"
