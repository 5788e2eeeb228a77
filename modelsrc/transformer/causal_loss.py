"""Next-token cross-entropy for causal language models.

Decision a reader may question: labels are the *unshifted* input ids (the
Hugging Face convention), and the shift happens here; positions labelled
``-100`` (padding, the first token of each packed document) are ignored. When
the trainer passes ``num_items_in_batch`` (tokens across all gradient
accumulation steps), the loss is a sum divided by it, so accumulated
gradients equal those of one large batch.

:func:`linear_cross_entropy` computes the same loss from the final hidden
states and the head's weight without materialising the (B, T, V) logits: it
walks the rows in chunks, and for each chunk computes the logits, their
log-sum-exp and, when a backward will follow, the chunk's gradients
(softmax minus one-hot, times the head and the hidden states) right away.
The backward pass only scales those saved gradients by the incoming one, so
the logits cost one chunk of memory and no matmul is recomputed. The price:
the gradients are computed even if no backward follows (it only does so when
autograd records the call), and it cannot be differentiated twice.
"""

import torch
import torch.nn.functional as F

from .saved_activations import matmul

#: Logit elements per chunk (16 MiB in float32), whatever the vocabulary.
CHUNK_ELEMENTS = 1 << 22
#: Fewer rows than this makes the chunk's matmuls inefficient.
MIN_CHUNK_ROWS = 256


def causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of predicting ``labels[:, t + 1]`` from ``logits[:, t]``.

    Args:
        logits: (B, T, V) scores; computed in float32 here.
        labels: (B, T) target ids, ``ignore_index`` where there is no target.
        ignore_index: Label value that contributes nothing.
        num_items_in_batch: If given, divide the summed loss by it instead of
            averaging over this batch's targets.

    Returns:
        A scalar loss.
    """
    vocab_size = logits.shape[-1]
    shifted_logits = logits[:, :-1, :].float().reshape(-1, vocab_size)  # (B*(T-1), V)
    targets = labels[:, 1:].reshape(-1).to(logits.device)  # (B*(T-1),)
    if num_items_in_batch is None:
        return F.cross_entropy(shifted_logits, targets, ignore_index=ignore_index)
    total = F.cross_entropy(shifted_logits, targets, ignore_index=ignore_index, reduction="sum")
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch


def linear_cross_entropy(
    hidden_states: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor,
    ignore_index: int = -100,
    num_items_in_batch: int | torch.Tensor | None = None,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """``causal_lm_loss(hidden_states @ weight.T, labels)`` without the full logits.

    Under autocast the matmuls run in the autocast dtype (as the head's
    ``nn.Linear`` would) and the softmax in float32.

    Args:
        hidden_states: (B, T, D) final hidden states.
        weight: (V, D) output embedding (``lm_head.weight``).
        labels: (B, T) unshifted target ids, ``ignore_index`` where there is no target.
        ignore_index: Label value that contributes nothing.
        num_items_in_batch: If given, divide the summed loss by it instead of
            averaging over this batch's targets.
        chunk_rows: Rows of logits per chunk; default about 16 MiB of float32 logits.

    Returns:
        A float32 scalar loss.
    """
    batch, seq_len, hidden = hidden_states.shape
    device = hidden_states.device
    # Shift by padding the targets: row t of the flat hidden states predicts labels[t + 1];
    # each sequence's last row gets ignore_index (one wasted row instead of a copy of the rest).
    targets = F.pad(labels.to(device)[:, 1:], (0, 1), value=ignore_index).reshape(-1)
    if torch.is_autocast_enabled(device.type):
        dtype = torch.get_autocast_dtype(device.type)
    else:
        dtype = torch.promote_types(hidden_states.dtype, weight.dtype)
    if chunk_rows is None:
        chunk_rows = max(MIN_CHUNK_ROWS, CHUNK_ELEMENTS // weight.shape[0])
    total = _LinearCrossEntropySum.apply(
        hidden_states.reshape(-1, hidden), weight, targets, ignore_index, chunk_rows, dtype
    )
    if num_items_in_batch is None:
        return total / (targets != ignore_index).sum()
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(device)
    return total / num_items_in_batch


class _LinearCrossEntropySum(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T`` against ``targets``, chunk by chunk."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, ignore_index, chunk_rows, dtype):
        # hidden (N, D), weight (V, D), targets (N,)
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        with torch.autocast(hidden.device.type, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_h = torch.empty_like(h) if need_hidden else None
            grad_w = (
                torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
                if need_weight
                else None
            )
            for start in range(0, h.shape[0], chunk_rows):
                rows = slice(start, start + chunk_rows)
                logits = matmul(h[rows], w.T).float()  # (n, V), overwritten below
                valid = targets[rows] != ignore_index  # (n,)
                index = targets[rows].masked_fill(~valid, 0)[:, None]  # (n, 1)
                picked = logits.gather(1, index).squeeze(1)
                # log-sum-exp by hand, keeping exp(logits - max) for the softmax below
                top = logits.amax(dim=-1, keepdim=True)  # (n, 1)
                exps = logits.sub_(top).exp_()
                sums = exps.sum(dim=-1)  # (n,)
                lse = top.squeeze(1) + sums.log()
                total += ((lse - picked) * valid).sum()
                if not (need_hidden or need_weight):
                    continue
                # d loss / d logits = softmax - one_hot, zero on ignored rows
                weights = valid.to(exps.dtype)
                grad = exps.mul_((weights / sums)[:, None])
                grad.scatter_add_(1, index, -weights[:, None])
                grad = grad.to(dtype)
                if need_hidden:
                    matmul(grad, w, out=grad_h[rows])
                if need_weight and dtype == torch.float32:
                    grad_w.addmm_(grad.T, h[rows])
                elif need_weight:
                    grad_w += matmul(grad.T, h[rows]).float()  # summed in float32 across chunks
        ctx.save_for_backward(grad_h, grad_w)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_h, grad_w = ctx.saved_tensors
        hidden_dtype, weight_dtype = ctx.dtypes
        grad_hidden = (grad_h * grad_total).to(hidden_dtype) if grad_h is not None else None
        grad_weight = (grad_w * grad_total).to(weight_dtype) if grad_w is not None else None
        return grad_hidden, grad_weight, None, None, None, None
