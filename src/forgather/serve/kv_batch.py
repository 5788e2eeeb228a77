"""A batch of sequences of different lengths sharing one left-padded KV cache.

Rows join after their own prefill (their cache is merged in) and leave at any
step (their rows are dropped); one decode step then feeds every row its last
token. Shapes: keys and values are (B, H_kv, S, D) per layer, the padding mask
is (B, S) with 1 for real tokens, and row ``b`` holds ``lengths[b]`` real
tokens right-aligned at the end of its S columns.

Decision a reader may question: this uses the plain ``DynamicCache`` and the
2D attention mask + ``position_ids`` interface that ``generate()`` itself uses
for left-padded batches, not a paged cache. Any Hugging Face causal LM that
supports batched ``generate()`` therefore works unchanged, and every row's
numbers are those of decoding it alone (padding columns get zero attention
weight). The cost is copying the cache when a longer row joins and padding
columns while lengths differ; leading columns that no row uses any more are
trimmed whenever rows leave.
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


def cache_keyword(model) -> str:
    """The keyword under which ``model.forward`` takes its KV cache.

    transformers 5.2x renamed ``past_key_values`` to ``cache`` (the old name
    warns); a model written for either side of the rename is served, and
    Forgather's generated models accept both.
    """
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def check_cache_supported(config) -> None:
    """Raise if the model's cache has layers other than plain full-attention ones.

    Sliding-window and linear-attention layers keep only part of the sequence,
    so their rows cannot be padded and merged as done here.

    Raises:
        NotImplementedError: For such a model.
    """
    kinds = {type(layer).__name__ for layer in DynamicCache(config=config).layers}
    unsupported = kinds - {DynamicLayer.__name__}
    if unsupported:
        raise NotImplementedError(
            f"forgather's batch scheduler supports full-attention KV caches only; this model's cache "
            f"has {sorted(unsupported)} layers (serve it with vLLM instead)"
        )


def _left_pad(x: torch.Tensor, columns: int) -> torch.Tensor:
    """(B, H, S, D) -> (B, H, S + columns, D) with zeros in front."""
    if columns == 0:
        return x
    batch, heads, _, dim = x.shape
    return torch.cat([x.new_zeros(batch, heads, columns, dim), x], dim=2)


class PaddedKVBatch:
    """The rows being decoded together and their shared cache.

    Args:
        config: The model's config (decides the cache's layer types).
    """

    def __init__(self, config) -> None:
        self._config = config
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (B, S) long, 1 = real token
        self.lengths: list[int] = []  # real tokens per row (= position of its next token)

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, cache: DynamicCache, length: int) -> None:
        """Append a prefilled sequence as the last row.

        Args:
            cache: Its own cache, batch size 1, holding ``length`` tokens.
            length: Its number of tokens.
        """
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        device = layers[0][0].device
        row_mask = torch.ones(1, length, dtype=torch.long, device=device)
        if self.cache is None:
            self.cache, self.mask = cache, row_mask
            self.lengths = [length]
            return
        width = max(self.mask.shape[1], length)
        old_pad, new_pad = width - self.mask.shape[1], width - length
        merged = DynamicCache(config=self._config)
        for index, ((keys, values), old) in enumerate(zip(layers, self.cache.layers, strict=True)):
            merged.update(
                torch.cat([_left_pad(old.keys, old_pad), _left_pad(keys, new_pad)], dim=0),
                torch.cat([_left_pad(old.values, old_pad), _left_pad(values, new_pad)], dim=0),
                index,
            )
        self.mask = torch.cat(
            [
                torch.nn.functional.pad(self.mask, (old_pad, 0)),
                torch.nn.functional.pad(row_mask, (new_pad, 0)),
            ],
            dim=0,
        )
        self.cache = merged
        self.lengths.append(length)

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in that order); drop the others and unused columns."""
        if not rows:
            self.cache, self.mask, self.lengths = None, None, []
            return
        if rows == list(range(len(self.lengths))):
            return
        index = torch.tensor(rows, device=self.mask.device)
        self.lengths = [self.lengths[row] for row in rows]
        unused = self.mask.shape[1] - max(self.lengths)  # leading columns every kept row pads
        self.mask = self.mask[index, unused:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, unused:]
            layer.values = layer.values[index, :, unused:]

    def step_inputs(self, last_tokens: list[int]) -> dict[str, torch.Tensor | bool]:
        """Model keyword arguments for one decode step that feeds each row its last token.

        The mask gains the new token's column here; the caller passes
        :attr:`cache` under the model's :func:`cache_keyword` and the model
        appends its keys and values to it.
        """
        device = self.mask.device
        self.mask = torch.nn.functional.pad(self.mask, (0, 1), value=1)
        positions = torch.tensor(self.lengths, device=device)[:, None]  # (B, 1)
        self.lengths = [length + 1 for length in self.lengths]
        return {
            "input_ids": torch.tensor(last_tokens, device=device)[:, None],  # (B, 1)
            "attention_mask": self.mask,
            "position_ids": positions,
            "use_cache": True,
        }
