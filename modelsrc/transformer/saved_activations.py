"""Training-only autograd functions that save fewer activations than autograd would.

A training step's peak memory is mostly what the forward saves for the
backward. Two blocks save far more than their backward needs when autograd
records their plain operators:

* SwiGLU (``down(silu(gate(x)) * up(x))``) keeps ``gate``, ``silu(gate)``,
  ``up`` and their product, four (tokens, intermediate) tensors per layer.
  :class:`SwiGLUFunction` keeps ``gate`` and ``up`` and recomputes the two
  element-wise products in the backward, which costs no matmul.
* SDPA on a CPU turns a boolean mask into a float mask inside every layer's
  call and saves that copy, one (B, 1, T, S) float tensor per layer, and in
  bf16 training on a CPU without native bf16 it runs in float32 (see
  ``causal_attention.upcast_for_backward``), saving float32 inputs and output.
  :class:`CPUAttentionFunction` saves the boolean mask (shared by every layer)
  and the inputs and output in their own dtype, and rebuilds the float mask and
  the float32 copies in the backward.

Both compute what the plain operators compute (the same kernels in the same
dtypes, except that bf16 matmuls on a CPU that only emulates bf16 run as
float32 GEMMs on the same values, see :func:`matmul`), so losses and
gradients match them; ``tests/ml/model/
test_training_kernels.py`` checks that. They are used only outside
``torch.compile``, which fuses and schedules the plain operators itself.
"""

import torch
import torch.nn.functional as F

_flash_forward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default
_flash_backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default


def _cpu_has_native_bf16() -> bool:
    cpu = torch.cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    # Unknown (an older or newer torch without these private checks): assume native.
    return any(getattr(cpu, name, lambda: True)() for name in checks)


#: Whether this machine's CPU computes bfloat16 natively (AVX512-BF16 or AMX).
CPU_NATIVE_BF16 = _cpu_has_native_bf16()


def matmul(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``a @ b`` (into ``out`` if given), with bf16 on a CPU that only emulates bf16
    run as a float32 GEMM.

    There PyTorch's bf16 GEMM is 2-3x slower than the float32 one of the same
    shape. A product of two bf16 numbers is exact in float32 and the bf16 GEMM
    accumulates in float32 too, so converting the operands first and rounding
    the result to bf16 gives the bf16 GEMM's numbers up to summation order.
    """
    if not _emulated_bf16(a):
        return torch.matmul(a, b, out=out)
    product = _float32_gemms([(a.flatten(0, -2), b)])  # (..., K) @ (K, N)
    product = product.view(*a.shape[:-1], b.shape[-1])
    return product if out is None else out.copy_(product)


def matmul_sum(a1: torch.Tensor, b1: torch.Tensor, a2: torch.Tensor, b2: torch.Tensor):
    """``a1 @ b1 + a2 @ b2`` rounded once, as :func:`matmul` runs it."""
    if _emulated_bf16(a1):
        return _float32_gemms([(a1, b1), (a2, b2)])
    return torch.addmm(a1 @ b1, a2, b2)


#: Elements of the float32 copies made at a time: the copies stay a few MiB.
_GEMM_CHUNK_ELEMENTS = 1 << 20


def _float32_gemms(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """``sum(a @ b for a, b in pairs)`` of 2-D bf16 matrices in float32, rounded to bf16.

    The operands are converted a block of rows (or, for a long inner dimension,
    of the inner dimension) at a time, so the float32 copies never hold more
    than a few MiB however large the matrices are.
    """
    rows, inner = pairs[0][0].shape
    cols = pairs[0][1].shape[1]
    if rows >= inner:  # chunk the rows of the result
        out = torch.empty(rows, cols, dtype=torch.bfloat16, device=pairs[0][0].device)
        b32 = [b.float() for _, b in pairs]
        step = max(1, _GEMM_CHUNK_ELEMENTS // max(inner, cols))
        for start in range(0, rows, step):
            part = None
            for (a, _), b in zip(pairs, b32, strict=True):
                a32 = a[start : start + step].float()
                part = a32 @ b if part is None else part.addmm_(a32, b)
            out[start : start + step] = part
        return out
    # A long inner dimension (a weight gradient): sum float32 products over blocks of it.
    total = torch.zeros(rows, cols, dtype=torch.float32, device=pairs[0][0].device)
    step = max(1, _GEMM_CHUNK_ELEMENTS // max(rows, cols))
    for a, b in pairs:
        for start in range(0, inner, step):
            total.addmm_(a[:, start : start + step].float(), b[start : start + step].float())
    return total.to(torch.bfloat16)


def _emulated_bf16(a: torch.Tensor) -> bool:
    return a.dtype == torch.bfloat16 and a.device.type == "cpu" and not CPU_NATIVE_BF16


def _compute_dtype(device_type: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype autocast would run a matmul in, here and now."""
    if torch.is_autocast_enabled(device_type) and dtype.is_floating_point:
        return torch.get_autocast_dtype(device_type)
    return dtype


class SwiGLUFunction(torch.autograd.Function):
    """``F.linear(silu(x @ Wg.T) * (x @ Wu.T), Wd)`` saving ``x``, ``gate`` and ``up`` only.

    Autocast is applied by hand (inputs cast once to the autocast dtype, the
    backward run in that dtype) so it behaves like ``nn.Linear`` under autocast
    on any device; gradients come back in each input's own dtype.
    """

    @staticmethod
    def forward(ctx, x, gate_weight, up_weight, down_weight):
        device_type = x.device.type
        dtype = _compute_dtype(device_type, x.dtype)
        with torch.autocast(device_type, enabled=False):
            xc, wg, wu, wd = (t.to(dtype) for t in (x, gate_weight, up_weight, down_weight))
            gate = matmul(xc, wg.T)
            up = matmul(xc, wu.T)
            output = matmul(F.silu(gate).mul_(up), wd.T)  # in place: one temporary, not two
        ctx.save_for_backward(xc, gate, up, wg, wu, wd)
        ctx.dtypes = (x.dtype, gate_weight.dtype, up_weight.dtype, down_weight.dtype)
        return output

    @staticmethod
    def backward(ctx, grad_output):
        xc, gate, up, wg, wu, wd = ctx.saved_tensors
        with torch.autocast(grad_output.device.type, enabled=False):
            grad_output = grad_output.to(gate.dtype).flatten(0, -2)  # (N, D)
            gate2, up2, x2 = gate.flatten(0, -2), up.flatten(0, -2), xc.flatten(0, -2)
            silu = F.silu(gate2)
            grad_down = matmul(grad_output.T, silu * up2) if ctx.needs_input_grad[3] else None
            grad_hidden = matmul(grad_output, wd)  # (N, I)
            grad_up = grad_hidden * silu
            del silu  # each (tokens, intermediate) temporary freed once used: a lower peak
            # autograd's own kernel for silu's derivative: one pass.
            grad_gate = torch.ops.aten.silu_backward(grad_hidden.mul_(up2), gate2)
            del grad_hidden
            grad_x = None
            if ctx.needs_input_grad[0]:
                grad_x = matmul_sum(grad_up, wu, grad_gate, wg).view(xc.shape)
            grad_wg = matmul(grad_gate.T, x2) if ctx.needs_input_grad[1] else None
            grad_wu = matmul(grad_up.T, x2) if ctx.needs_input_grad[2] else None
        grads = (grad_x, grad_wg, grad_wu, grad_down)
        return tuple(
            None if g is None else g.to(dtype) for g, dtype in zip(grads, ctx.dtypes, strict=True)
        )


def _float_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """SDPA's additive form of ``mask`` in ``dtype`` (what SDPA itself would build)."""
    if mask is None or mask.dtype != torch.bool:
        return None if mask is None else mask.to(dtype)
    additive = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    return additive.masked_fill_(~mask, float("-inf"))


#: Query rows per kernel call when attention is split by rows (see ``_row_chunks``).
QUERY_CHUNK_ROWS = 256


def _row_chunks(mask: torch.Tensor | None, length: int) -> list[tuple[int, int, int]]:
    """``(first row, end row, keys)`` per kernel call: the keys any of those rows may see.

    PyTorch's CPU flash kernel computes a row block's scores against every
    block of 512 keys, masked or not, so one call over a causal T x T problem
    with T <= 512 does all T² scores. Called on chunks of rows, each with only
    the keys up to its last row, it skips most of the masked half: 3/4 of the
    work in two chunks, 5/8 in four. Applies to plain causal attention
    (``mask`` None) and to boolean masks, whose chunks take the keys up to the
    last one any of their rows may see (read from the mask, so any boolean
    mask is safe); additive float masks and short sequences run whole.
    Chunks of 256 rows: with 128 the kernel's smaller row blocks cost what the
    skipped keys save (B=32, H=4, T=512, D=64, float32, forward and backward:
    335 ms whole, 245 ms in chunks of 256, 254 ms in chunks of 128).
    """
    whole = [(0, length, length)]
    if length <= QUERY_CHUNK_ROWS or (mask is not None and mask.dtype != torch.bool):
        return whole
    starts = range(0, length, QUERY_CHUNK_ROWS)
    if mask is None:
        return [
            (a, min(a + QUERY_CHUNK_ROWS, length), min(a + QUERY_CHUNK_ROWS, length))
            for a in starts
        ]
    seen = mask.flatten(0, -3).any(0)  # (T, S): whether any batch row or head sees key s
    chunks = []
    for a in starts:
        end = min(a + QUERY_CHUNK_ROWS, length)
        keys = seen[a:end].any(0).nonzero()
        chunks.append((a, end, int(keys[-1]) + 1 if len(keys) else length))
    return chunks


def _chunk_mask(mask, first, end, keys, query):
    """The additive mask of rows ``first:end`` and keys ``:keys`` (causal when ``mask`` is None),
    in ``query``'s dtype, on its device."""
    dtype = query.dtype
    if mask is None:
        allowed = torch.ones(end - first, keys, dtype=torch.bool, device=query.device).tril(first)
        return _float_mask(allowed[None, None], dtype)
    return _float_mask(mask[..., first:end, :keys], dtype)


def _widened(part: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``part`` (B, H, keys, D) in float32 (itself if it is already), zero past its keys."""
    if part.shape == shape:
        return part.float()
    full = part.new_zeros(shape, dtype=torch.float32)
    full[:, :, : part.shape[2]] = part
    return full


class CPUAttentionFunction(torch.autograd.Function):
    """PyTorch's CPU flash-attention kernels, saving the mask once and the inputs as given.

    ``compute_dtype`` is the dtype the kernels run in (float32 for bf16
    training on a CPU that emulates bf16); the output comes back, and is saved,
    in the inputs' dtype. Query, key and value must have the same head count
    (the caller repeats grouped key/value heads). Long causal sequences are
    computed in chunks of query rows that skip the keys none of their rows may
    see (``_row_chunks``); the results equal one call's up to summation order.
    """

    @staticmethod
    def forward(ctx, query, key, value, mask, scale, compute_dtype):
        q, k, v = (t.to(compute_dtype) for t in (query, key, value))
        chunks = _row_chunks(mask, q.shape[-2])
        if len(chunks) == 1:
            out, logsumexp = _flash_forward(
                q, k, v, is_causal=mask is None, attn_mask=_float_mask(mask, compute_dtype),
                scale=scale,
            )[:2]  # fmt: skip
            out = out.to(query.dtype)
        else:
            batch, heads, length, head_dim = query.shape
            # The kernel's own output layout (B, T, H, D), so the caller's transpose is free.
            out = query.new_empty(batch, length, heads, head_dim).transpose(1, 2)
            logsumexp = None
            for first, end, keys in chunks:
                part, part_lse = _flash_forward(
                    q[:, :, first:end], k[:, :, :keys], v[:, :, :keys], is_causal=False,
                    attn_mask=_chunk_mask(mask, first, end, keys, q), scale=scale,
                )[:2]  # fmt: skip
                if logsumexp is None:
                    logsumexp = part_lse.new_empty(batch, heads, length)
                out[:, :, first:end] = part
                logsumexp[:, :, first:end] = part_lse
        ctx.save_for_backward(query, key, value, mask, out, logsumexp)
        ctx.scale, ctx.compute_dtype, ctx.chunks = scale, compute_dtype, chunks
        return out

    @staticmethod
    def backward(ctx, grad_out):
        query, key, value, mask, out, logsumexp = ctx.saved_tensors
        dtype, scale = ctx.compute_dtype, ctx.scale
        q, k, v, out = (t.to(dtype) for t in (query, key, value, out))
        grad_out = grad_out.to(dtype).contiguous()
        if len(ctx.chunks) == 1:
            grads = _flash_backward(
                grad_out, q, k, v, out, logsumexp, 0.0, mask is None,
                attn_mask=_float_mask(mask, dtype), scale=scale,
            )  # fmt: skip
        else:
            # Keys and values take gradients from every chunk, summed in float32 into the
            # widest chunk's (computed first, so there is no zero-filled accumulator).
            grad_q, grad_k, grad_v = torch.empty_like(q), None, None
            for first, end, keys in sorted(ctx.chunks, key=lambda chunk: -chunk[2]):
                part_q, part_k, part_v = _flash_backward(
                    grad_out[:, :, first:end], q[:, :, first:end], k[:, :, :keys],
                    v[:, :, :keys], out[:, :, first:end], logsumexp[:, :, first:end], 0.0,
                    False, attn_mask=_chunk_mask(mask, first, end, keys, q), scale=scale,
                )  # fmt: skip
                grad_q[:, :, first:end] = part_q
                if grad_k is None:
                    grad_k, grad_v = _widened(part_k, k.shape), _widened(part_v, v.shape)
                else:
                    grad_k[:, :, :keys] += part_k
                    grad_v[:, :, :keys] += part_v
            grads = (grad_q, grad_k, grad_v)
        grad_q, grad_k, grad_v = (
            g.to(t.dtype) for g, t in zip(grads, (query, key, value), strict=True)
        )
        return grad_q, grad_k, grad_v, None, None, None
