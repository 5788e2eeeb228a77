"""Causal attention masks for padded, packed and cached batches.

One function, :func:`causal_attention_mask`, turns what the model receives
(a 2D padding mask, ``position_ids``, the cache length) into the mask format
each attention implementation expects:

* ``eager``: a boolean (B|1, 1, T, S) mask, True where attention is allowed;
* ``sdpa``: the same, or ``None`` when the mask is plain causal, so PyTorch
  can take its fused ``is_causal`` path;
* ``flex_attention``: an additive float (B, 1, T, S) mask;
* ``flash_attention_*``: the 2D padding mask (or ``None``); the kernel
  finds packed documents from ``position_ids`` itself;
* anything else (vLLM's ``"vllm"``, paged kernels): ``None``, since those
  backends build their own masks from their own metadata.

Here T is the number of new tokens and S = cache length + T.

Decision a reader may question: packed documents are found from
``position_ids`` restarting at 0 (every 0 after the first token starts a new
document), not from a separate document-id tensor, because ``position_ids``
is already what Hugging Face collators and vLLM pass. Documents are only
separated when nothing is cached (training and prefill); a generation step
continues one document per row. Every query may attend to itself, so a
padding query never has an all-masked row (which would give NaN); outputs at
padding positions are meaningless and are ignored by the loss.

Second decision: whether a batch is plain causal (no padding, no document
restarts) can only be known by reading the tensors, which is a host sync on an
accelerator and a graph break under ``torch.compile``. Outside compilation the
mask reads them once (one combined check) so SDPA can take its ``is_causal``
path; while compiling it never reads data and builds the dense mask whenever
the caller gave a padding mask or positions that may restart (on a CPU the
masked SDPA kernel costs about the same as the causal one).
"""

import torch
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

# Implementations that take a dense (B, 1, T, S) mask tensor.
_DENSE_MASK_IMPLEMENTATIONS = ("eager", "sdpa", "flex_attention")


def mask_kind(attn_implementation: str) -> str:
    """The built-in implementation whose mask ``attn_implementation`` takes.

    An implementation registered with transformers under another name (a
    server's own decode kernel, say) declares its mask format by registering
    one of transformers' mask functions for that name; it then gets the mask
    and the handling of the built-in one. Unknown names are their own kind.

    >>> mask_kind("sdpa"), mask_kind("vllm")
    ('sdpa', 'vllm')
    """
    if attn_implementation in _DENSE_MASK_IMPLEMENTATIONS:
        return attn_implementation
    registered = ALL_MASK_ATTENTION_FUNCTIONS.get(attn_implementation)
    for kind in _DENSE_MASK_IMPLEMENTATIONS:
        if registered is not None and registered is ALL_MASK_ATTENTION_FUNCTIONS.get(kind):
            return kind
    return attn_implementation


def document_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) position ids -> (B, T) document index, counting restarts at 0.

    >>> document_ids(torch.tensor([[0, 1, 2, 0, 1, 0]])).tolist()
    [[1, 1, 1, 2, 2, 3]]
    """
    return (position_ids == 0).cumsum(dim=-1)


def has_document_boundaries(position_ids: torch.Tensor) -> bool:
    """True if any row restarts its positions at 0 after its first token (reads the tensor)."""
    return bool((position_ids[:, 1:] == 0).any())


def _is_plain_causal(
    attention_mask: torch.Tensor | None, position_ids: torch.Tensor | None
) -> bool:
    """No padding and no document restart: both checks in one host read."""
    restart = None
    if position_ids is not None and position_ids.shape[-1] > 1:
        restart = (position_ids[:, 1:] == 0).any()
    padding = None if attention_mask is None else ~attention_mask.to(torch.bool).all()
    if restart is not None and padding is not None:
        return not bool(restart.to(padding.device) | padding)
    flag = restart if restart is not None else padding
    return flag is None or not bool(flag)


def default_position_ids(
    attention_mask: torch.Tensor | None,
    past_length: int,
    query_length: int,
    device: torch.device,
) -> torch.Tensor:
    """Positions of the new tokens when the caller gives none.

    Without padding they continue from the cache: ``past_length .. past_length+T-1``.
    With a (B, S) padding mask each row counts only its real tokens, so a
    left-padded prompt still starts at position 0.

    >>> default_position_ids(torch.tensor([[0, 0, 1, 1]]), 0, 4, torch.device("cpu")).tolist()
    [[0, 0, 0, 1]]
    """
    if attention_mask is None:
        return torch.arange(past_length, past_length + query_length, device=device)[None]
    positions = (attention_mask.to(device).long().cumsum(dim=-1) - 1).clamp(min=0)  # (B, S)
    return positions[:, -query_length:]


def dense_causal_mask(
    query_length: int,
    past_length: int,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    device: torch.device,
) -> torch.Tensor:
    """Boolean (B|1, 1, T, S) mask: causal, within one document, never onto padding.

    Args:
        query_length: T, the number of new tokens.
        past_length: Tokens already in the KV cache.
        attention_mask: (B, >=S) with 1 for real tokens and 0 for padding, or None.
        position_ids: (B|1, T) positions; documents are separated only when
            ``past_length == 0``.
        device: Where to build the mask.

    Returns:
        True where a query (row) may attend to a key (column).
    """
    kv_length = past_length + query_length
    q_pos = torch.arange(past_length, kv_length, device=device)  # absolute query index (T,)
    k_pos = torch.arange(kv_length, device=device)  # (S,)
    is_self = k_pos[None, :] == q_pos[:, None]  # (T, S)
    allowed = (k_pos[None, :] <= q_pos[:, None])[None]  # (1, T, S)
    if position_ids is not None and past_length == 0 and query_length > 1:
        # Without a read of the data: rows without restarts are one document anyway.
        doc = document_ids(position_ids.to(device))  # (B|1, T) and S == T here
        allowed = allowed & (doc[:, :, None] == doc[:, None, :])
    if attention_mask is not None:
        if attention_mask.shape[-1] < kv_length:
            raise ValueError(
                f"attention_mask covers {attention_mask.shape[-1]} tokens but the cache and "
                f"input hold {kv_length}"
            )
        not_padding = attention_mask[:, -kv_length:].to(device=device, dtype=torch.bool)
        allowed = allowed & not_padding[:, None, :]
    allowed = allowed | is_self
    return allowed[:, None]  # (B|1, 1, T, S)


def causal_attention_mask(
    attn_implementation: str,
    batch_size: int,
    query_length: int,
    past_length: int,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    dtype: torch.dtype,
    device: torch.device,
) -> torch.Tensor | None:
    """Build the mask ``attn_implementation`` expects (see the module docstring).

    Args:
        attn_implementation: ``config._attn_implementation``.
        batch_size: B.
        query_length: T, new tokens in this forward.
        past_length: Tokens already in the KV cache.
        attention_mask: (B, S) padding mask (1 = real token) or None.
        position_ids: (B|1, T) positions.
        dtype: Dtype of an additive mask (flex attention).
        device: Where to build the mask.

    Returns:
        A mask tensor, or None when the implementation needs none.
    """
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask  # already prepared by the caller
    compiling = torch.compiler.is_compiling()
    attn_implementation = mask_kind(attn_implementation)
    if attn_implementation.startswith("flash_attention"):
        if attention_mask is None or (not compiling and bool(attention_mask.all())):
            return None
        return attention_mask
    if attn_implementation not in _DENSE_MASK_IMPLEMENTATIONS:
        return None
    if attn_implementation == "sdpa" and (past_length == 0 or query_length == 1):
        # One new token attends to the whole cache; a fresh sequence is plain causal.
        if past_length > 0 or query_length == 1:
            position_ids = None  # a cached step continues one document per row
        if attention_mask is None and position_ids is None:
            return None
        if not compiling and _is_plain_causal(attention_mask, position_ids):
            return None
    mask = dense_causal_mask(query_length, past_length, attention_mask, position_ids, device)
    if attn_implementation == "flex_attention":
        additive = torch.zeros(mask.shape, dtype=dtype, device=device)
        additive.masked_fill_(~mask, torch.finfo(dtype).min)
        # flex indexes the mask by batch, so it needs a real batch dimension.
        return additive.expand(batch_size, -1, -1, -1)
    return mask
