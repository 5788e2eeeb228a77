"""Next-token cross-entropy for causal language models.

Decision a reader may question: labels are the *unshifted* input ids (the
Hugging Face convention), and the shift happens here; positions labelled
``-100`` (padding, the first token of each packed document) are ignored. When
the trainer passes ``num_items_in_batch`` (tokens across all gradient
accumulation steps), the loss is a sum divided by it, so accumulated
gradients equal those of one large batch.
"""

import torch
import torch.nn.functional as F


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
