"""Causal multi-head attention with grouped-query heads, optional QK-norm,
RoPE or ALiBi and an optional sliding window, through the transformers
attention interface.

The kernel is looked up by name on every call: ``eager`` is this file's
:func:`eager_attention`; every other name (``sdpa``, ``flash_attention_2``,
``flex_attention``, vLLM's ``vllm``) comes from transformers'
``ALL_ATTENTION_FUNCTIONS``. The model passes the name down as
``attn_implementation`` (it reads ``config._attn_implementation``), so
``model.set_attn_implementation(...)`` and vLLM's backend take effect without
rebuilding anything.

Decision a reader may question: projections are reshaped with
``view(B, T, -1, head_dim)`` rather than with the configured head counts, so
when vLLM shards ``q_proj``/``k_proj``/``v_proj`` column-wise across
tensor-parallel ranks, each rank infers its local head count from the weight
it holds. Extra keyword arguments go straight to the kernel: that is how
vLLM hands its attention layers (``attention_instances``) to its kernel.
"""

import contextlib
from collections.abc import Callable

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .attention_masks import mask_kind
from .saved_activations import CPU_NATIVE_BF16, CPUAttentionFunction


def upcast_for_backward(attn_implementation: str, query: torch.Tensor) -> bool:
    """Whether to run SDPA in float32: bf16 training on a CPU that only emulates bf16.

    There PyTorch's bf16 flash-attention backward is several times slower than the
    float32 one (measured 2.5x at 8x4x512x64), while the forward alone is faster in
    bf16, so only passes that will run a backward are upcast.
    """
    return (
        attn_implementation == "sdpa"
        and query.dtype == torch.bfloat16
        and query.device.type == "cpu"
        and query.requires_grad
        and torch.is_grad_enabled()
        and not CPU_NATIVE_BF16
    )


# Kernels that accept the per-head additive mask ALiBi produces.
_ALIBI_IMPLEMENTATIONS = ("eager", "sdpa")
# Kernels that take a dense (B, 1, T, S) mask, to which a sliding window is added here.
_DENSE_MASK_IMPLEMENTATIONS = ("eager", "sdpa", "flex_attention")


def sliding_window_mask(
    attention_mask: torch.Tensor | None,
    query_length: int,
    key_length: int,
    window: int,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Restrict a dense causal mask so each query sees only the last ``window`` keys (itself included).

    Keys are the last ``key_length`` tokens and queries the last ``query_length``
    of them, so this holds for a full cache and for transformers' sliding-window
    cache (which keeps only ``window - 1`` past tokens); a mask covering more
    keys is cut to the last ``key_length`` columns.

    Args:
        attention_mask: Boolean (True = attend) or additive (B|1, 1|H, T, S')
            mask with S' >= key_length, or None for plain causal.
        query_length: T.
        key_length: S.
        window: Hugging Face's ``sliding_window``: query i sees key j when ``i - j < window``.
        device: Where to build the mask when ``attention_mask`` is None.

    Returns:
        A mask of the same kind, (.., T, S).
    """
    device = attention_mask.device if attention_mask is not None else device
    q_pos = torch.arange(key_length - query_length, key_length, device=device)[:, None]  # (T, 1)
    k_pos = torch.arange(key_length, device=device)[None, :]  # (1, S)
    in_window = (q_pos - k_pos < window) & (k_pos <= q_pos)  # (T, S)
    if attention_mask is None:
        return in_window[None, None]
    attention_mask = attention_mask[..., -key_length:]
    if attention_mask.dtype == torch.bool:
        return attention_mask & in_window
    return attention_mask.masked_fill(~in_window, torch.finfo(attention_mask.dtype).min)


def eager_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention in plain PyTorch, with the attention-interface signature.

    Args:
        module: The calling attention module (for ``training``).
        query: (B, Hq, T, hd).
        key: (B, Hkv, S, hd); Hq must be a multiple of Hkv.
        value: (B, Hkv, S, hd).
        attention_mask: Boolean (True = attend) or additive float mask
            broadcastable to (B, Hq, T, S); None means causal, aligned so the
            last query sees every key.
        scaling: Multiplier of the scores, usually ``hd ** -0.5``.
        dropout: Dropout probability on the attention weights.
        **kwargs: Ignored (other kernels' options).

    Returns:
        The output (B, T, Hq, hd) and the weights (B, Hq, T, S).
    """
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        # (B, Hkv, S, hd) -> (B, Hq, S, hd): each KV head serves `groups` query heads
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, Hq, T, S)
    if attention_mask is None:
        q_len, kv_len = scores.shape[-2:]
        attention_mask = torch.ones(q_len, kv_len, dtype=torch.bool, device=scores.device).tril(
            kv_len - q_len
        )
    if attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    else:
        scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value)  # (B, Hq, T, hd)
    return output.transpose(1, 2).contiguous(), weights


class CausalMultiheadAttention(nn.Module):
    """Self-attention for a decoder layer.

    Args:
        hidden_size: Model width.
        num_attention_heads: Query heads.
        num_key_value_heads: Key/value heads (GQA); default ``num_attention_heads``.
        head_dim: Per-head width; default ``hidden_size // num_attention_heads``.
        layer_idx: Index of the layer, the key of this layer's KV cache entry.
        bias: Whether the four projections have biases (GPT-2: yes, Llama: no).
        qkv_bias: Whether the query, key and value projections have biases;
            default ``bias`` (Qwen2: q/k/v yes, output no).
        dropout: Dropout on attention weights (training only).
        rotary: Shared :class:`RotaryEmbedding`, or None.
        alibi: Shared :class:`ALiBi`, or None.
        qk_norm_factory: Returns a norm over ``head_dim`` for queries and keys
            (QK-norm), or None.
        sliding_window: Each query attends only to the last ``sliding_window``
            tokens, itself included (Mistral); None attends to all.
    """

    def __init__(
        self,
        hidden_size: int,
        num_attention_heads: int,
        num_key_value_heads: int | None = None,
        head_dim: int | None = None,
        layer_idx: int = 0,
        bias: bool = False,
        dropout: float = 0.0,
        rotary: nn.Module | None = None,
        alibi: nn.Module | None = None,
        qk_norm_factory: Callable[[], nn.Module] | None = None,
        qkv_bias: bool | None = None,
        sliding_window: int | None = None,
    ) -> None:
        super().__init__()
        num_key_value_heads = num_key_value_heads or num_attention_heads
        if num_attention_heads % num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({num_attention_heads}) must be a multiple of "
                f"num_key_value_heads ({num_key_value_heads})"
            )
        self.head_dim = head_dim or hidden_size // num_attention_heads
        self.layer_idx = layer_idx
        # Read by transformers' sdpa kernel (GQA) and by its is_causal logic.
        self.num_key_value_groups = num_attention_heads // num_key_value_heads
        self.is_causal = True
        self.scaling = self.head_dim**-0.5
        self.dropout = dropout
        self.sliding_window = sliding_window
        qkv_bias = bias if qkv_bias is None else qkv_bias
        self.q_proj = nn.Linear(hidden_size, num_attention_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(hidden_size, num_key_value_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(hidden_size, num_key_value_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(num_attention_heads * self.head_dim, hidden_size, bias=bias)
        self.q_norm = qk_norm_factory() if qk_norm_factory else None
        self.k_norm = qk_norm_factory() if qk_norm_factory else None
        self.rotary = rotary
        self.alibi = alibi

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values=None,
        attn_implementation: str = "sdpa",
        rotary_tables: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """Attend over ``hidden_states`` (B, T, D); returns (B, T, D).

        ``past_key_values`` is a transformers ``Cache``; this layer's keys and
        values are appended with ``update(k, v, layer_idx)``. ``rotary_tables``:
        the cos/sin of this layer's rotary module for ``position_ids``, computed
        once per forward by the model (see ``rotary_embeddings.py``).
        """
        batch, seq_len, _ = hidden_states.shape
        head_shape = (batch, seq_len, -1, self.head_dim)
        query = self.q_proj(hidden_states).view(head_shape).transpose(1, 2)  # (B, Hq, T, hd)
        key = self.k_proj(hidden_states).view(head_shape).transpose(1, 2)  # (B, Hkv, T, hd)
        value = self.v_proj(hidden_states).view(head_shape).transpose(1, 2)  # (B, Hkv, T, hd)
        if self.q_norm is not None:
            query, key = self.q_norm(query), self.k_norm(key)
        if self.rotary is not None:
            query, key = self.rotary(query, key, position_ids, rotary_tables)
        if past_key_values is not None:
            key, value = past_key_values.update(key, value, self.layer_idx)  # (B, Hkv, S, hd)
        kind = mask_kind(attn_implementation)
        if self.alibi is not None:
            if kind not in _ALIBI_IMPLEMENTATIONS:
                raise ValueError(
                    f"ALiBi needs attention implementation 'eager' or 'sdpa', not {attn_implementation!r}"
                )
            attention_mask = self.alibi(attention_mask, query, key)
        if self.sliding_window is not None:
            if kind in _DENSE_MASK_IMPLEMENTATIONS:
                attention_mask = sliding_window_mask(
                    attention_mask, seq_len, key.shape[-2], self.sliding_window, query.device
                )
            else:
                # flash kernels take the window as an argument; vLLM reads it from the config.
                kwargs["sliding_window"] = self.sliding_window
        if attn_implementation == "eager":
            kernel = eager_attention
        else:
            kernel = ALL_ATTENTION_FUNCTIONS[attn_implementation]
        upcast = upcast_for_backward(attn_implementation, query)
        if self._saves_less_with_cpu_kernel(attn_implementation, query, key, attention_mask):
            dtype = torch.float32 if upcast else query.dtype
            # Grouped-query heads: the kernel wants one key/value head per query head.
            groups = query.shape[1] // key.shape[1]
            if groups > 1:
                key, value = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1)
            output = CPUAttentionFunction.apply(
                query, key, value, attention_mask, self.scaling, dtype
            )  # (B, Hq, T, hd)
            return self.o_proj(output.transpose(1, 2).reshape(batch, seq_len, -1))
        input_dtype = query.dtype
        if upcast:
            query, key, value = query.float(), key.float(), value.float()
            if attention_mask is not None and attention_mask.is_floating_point():
                attention_mask = attention_mask.float()
        # CPU autocast would cast SDPA's inputs back to bf16.
        with torch.autocast("cpu", enabled=False) if upcast else contextlib.nullcontext():
            output, _ = kernel(
                self,
                query,
                key,
                value,
                attention_mask,
                dropout=self.dropout if self.training else 0.0,
                scaling=self.scaling,
                position_ids=position_ids,
                **kwargs,
            )
        # Back to the input's dtype: a model held in bf16 (no autocast) has bf16 o_proj weights.
        output = output.to(input_dtype).reshape(batch, seq_len, -1).contiguous()  # (B, T, Hq * hd)
        return self.o_proj(output)

    def _saves_less_with_cpu_kernel(self, attn_implementation, query, key, mask) -> bool:
        """Whether to train through :class:`CPUAttentionFunction` (see ``saved_activations.py``).

        That is SDPA's own CPU kernel for a training forward without cache or
        dropout, outside ``torch.compile``; it saves one boolean mask for all
        layers instead of a float copy per layer.
        """
        return (
            attn_implementation == "sdpa"
            and query.device.type == "cpu"
            and query.requires_grad
            and torch.is_grad_enabled()
            and not torch.compiler.is_compiling()
            and (self.dropout == 0.0 or not self.training)
            and key.shape[-2] == query.shape[-2]
            and (mask is None or mask.dim() == 4)
        )
