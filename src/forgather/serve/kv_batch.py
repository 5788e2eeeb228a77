"""A batch of sequences of different lengths sharing one left-padded KV cache.

Rows join after their prefill (their keys and values are copied in) and leave
at any step; one decode step then feeds every row its last token. Shapes:
keys and values are (B, H_kv, S, D) per layer, the padding mask is (B, S) with
1 for real tokens, and row ``b`` holds ``lengths[b]`` real tokens
right-aligned at the end of its S columns.

Decision a reader may question: this keeps the plain 2D attention mask +
``position_ids`` interface that ``generate()`` itself uses for left-padded
batches, not a paged cache, so any Hugging Face causal LM that supports
batched ``generate()`` works unchanged and every row's numbers are those of
decoding it alone (padding columns get zero attention weight). But the keys
and values live in preallocated slabs (rows x columns, grown by doubling),
and the cache the model sees is a view of them: a decode step writes one
column in place instead of concatenating the whole cache, a leaving row is
replaced by the last row (one row copied, not the batch), and leading columns
no row uses are dropped by moving the view's start. Slab cells outside a
row's real tokens are kept at zero, so masked columns never hold a NaN that
``0 * NaN`` could spread into other rows.
"""

from __future__ import annotations

import inspect

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

_MIN_COLUMNS = 64  # first column capacity; doubled when full
# Cost model of the segmented decode attention, in (row, column) cells of keys and values
# read: one more attention call costs about as much as reading this many cells
# (~30-60 us against ~0.25 us a cell, measured on CPU at 32 rows of 4 heads x 64;
# 64 to 2048 measured within noise of each other).
GROUP_COST_CELLS = 256
SORT_HORIZON_STEPS = 16  # steps over which sorting the rows must repay its copy


def cheapest_runs(
    lengths: list[int], group_cost: int, max_cells: int | None = None
) -> list[tuple[int, int]]:
    """Split items, in their order, into consecutive runs of least total cost.

    A run costs ``group_cost`` plus its item count times its longest item;
    a run of several items holds at most ``max_cells`` of that product (exact
    dynamic programme, O(n^2)).

    Returns:
        (first, end) indices of each run, in order, covering all items.
    """
    count = len(lengths)
    best = [0] + [-1] * count
    cut = [0] * (count + 1)
    for end in range(1, count + 1):
        widest = 0
        for first in range(end - 1, -1, -1):
            widest = max(widest, lengths[first])
            if max_cells is not None and end - first > 1 and (end - first) * widest > max_cells:
                break  # longer runs only hold more
            cost = best[first] + group_cost + (end - first) * widest
            if best[end] < 0 or cost < best[end]:
                best[end], cut[end] = cost, first
    runs, end = [], count
    while end:
        runs.append((cut[end], end))
        end = cut[end]
    return runs[::-1]


def row_groups(lengths: list[int], group_cost: int = GROUP_COST_CELLS) -> list[tuple[int, int]]:
    """Split rows, in their order, into runs that minimise the cells attention reads.

    A run of rows reads as many columns per row as its longest row has tokens,
    plus ``group_cost`` cells per run.

    Returns:
        (first row, end row) of each run, in order, covering all rows.
    """
    return cheapest_runs(lengths, group_cost)


def groups_cost(lengths: list[int], runs: list[tuple[int, int]], group_cost: int) -> int:
    """Cells read by attention over ``runs`` of rows with these lengths."""
    return sum(group_cost + (end - first) * max(lengths[first:end]) for first, end in runs)


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


class _SlabLayer(DynamicLayer):
    """One layer's keys and values: views of (rows, H, columns, D) slabs owned by the batch.

    ``update`` writes the step's keys at the batch's write column and returns
    the columns from the batch's start through them.
    """

    def __init__(self, batch: PaddedKVBatch) -> None:
        super().__init__()
        self._batch = batch
        self.key_slab: torch.Tensor | None = None
        self.value_slab: torch.Tensor | None = None
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        batch = self._batch
        rows, at = key_states.shape[0], batch.write_column
        end = at + key_states.shape[2]
        self.key_slab[:rows, :, at:end] = key_states
        self.value_slab[:rows, :, at:end] = value_states
        self.keys = self.key_slab[:rows, :, batch.start : end]
        self.values = self.value_slab[:rows, :, batch.start : end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._batch.write_column - self._batch.start

    def refresh(self) -> None:
        """Point ``keys``/``values`` at the batch's current rows and columns."""
        batch = self._batch
        columns = slice(batch.start, batch.end)
        self.keys = self.key_slab[: len(batch), :, columns]
        self.values = self.value_slab[: len(batch), :, columns]


class PaddedKVBatch:
    """The rows being decoded together and their shared cache.

    Args:
        config: The model's config (decides the cache's layer types).
    """

    def __init__(self, config) -> None:
        self._config = config
        self.cache: DynamicCache | None = None
        self._mask_slab: torch.Tensor | None = None  # (rows, columns) long, 1 = real token
        self.lengths: list[int] = []  # real tokens per row (= position of its next token)
        self.start = 0  # first column any row uses
        self.end = 0  # one past the last written column
        self.write_column = 0  # where the model's next keys go (during a step: end - 1)
        self._widest = 0  # the longest prompt added so far: room kept for it left of `end`
        self._runs: list[tuple[int, int]] | None = None  # row groups; None: recompute

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def mask(self) -> torch.Tensor | None:
        """(B, S) padding mask of the rows, 1 for real tokens."""
        if not self.lengths:
            return None
        return self._mask_slab[: len(self.lengths), self.start : self.end]

    @property
    def _layers(self) -> list[_SlabLayer]:
        return self.cache.layers

    def _allocate(self, rows: int, columns: int, like: torch.Tensor, end: int) -> None:
        """New zero slabs of ``rows`` x ``columns``; the current rows' used columns move to end
        at column ``end``."""
        keep, used = len(self.lengths), slice(self.start, self.end)
        start = end - (self.end - self.start)
        moved = slice(start, end)
        if self.cache is None:
            self.cache = DynamicCache(config=self._config)
            self.cache.layers = [_SlabLayer(self) for _ in self.cache.layers]
        for layer in self._layers:
            for name in ("key_slab", "value_slab"):
                old = getattr(layer, name)
                heads, dim = (like.shape[1], like.shape[3]) if old is None else old.shape[1::2]
                new = like.new_zeros(rows, heads, columns, dim)
                if old is not None and keep:
                    new[:keep, :, moved] = old[:keep, :, used]
                setattr(layer, name, new)
        mask = torch.zeros(rows, columns, dtype=torch.long, device=like.device)
        if self._mask_slab is not None and keep:
            mask[:keep, moved] = self._mask_slab[:keep, used]
        self._mask_slab = mask
        self.start, self.end = start, end

    def add_rows(
        self, cache: DynamicCache, lengths: list[int], rows: list[int] | None = None
    ) -> None:
        """Append prefilled sequences as the last rows.

        Args:
            cache: Their own cache, holding L columns; a row's tokens are its
                last columns (left padding before them is ignored).
            lengths: The numbers of tokens of the rows added.
            rows: Which rows of ``cache`` to add (default: all, in order).
        """
        sources = [(layer.keys, layer.values) for layer in cache.layers]
        if rows is not None and rows != list(range(sources[0][0].shape[0])):
            index = torch.tensor(rows, device=sources[0][0].device)
            sources = [(keys[index], values[index]) for keys, values in sources]
        keys0 = sources[0][0]
        new, width = len(lengths), keys0.shape[2]
        self._widest = max(self._widest, width)
        current = len(self.lengths)
        if not current:
            self.start = self.end = self._widest
        capacity_rows, capacity_columns = (
            (0, 0) if self._mask_slab is None else tuple(self._mask_slab.shape)
        )
        # The new rows end at `end` like every row: they need `width` columns before it, and
        # the next step one column after it.
        if current + new > capacity_rows or self.end < width or self.end + 1 > capacity_columns:
            # Room for the longest prompt seen on the left, as much again on the right.
            end = max(self.end - self.start, self._widest)
            columns = max(_MIN_COLUMNS, capacity_columns, 2 * end + 1)
            self._allocate(max(capacity_rows, current + new, 2 * current), columns, keys0, end)
        first = self.end - width
        if first < self.start:  # columns no current row uses: zero them (stale rows' values)
            for layer in self._layers:
                layer.key_slab[:current, :, first : self.start] = 0
                layer.value_slab[:current, :, first : self.start] = 0
            self._mask_slab[:current, first : self.start] = 0
            self.start = first
        block = slice(current, current + new)
        for layer, (keys, values) in zip(self._layers, sources, strict=True):
            for slab, source in ((layer.key_slab, keys), (layer.value_slab, values)):
                slab[block, :, self.start : first] = 0
                slab[block, :, first : self.end] = source
        self._mask_slab[block, self.start : self.end] = 0
        for i, length in enumerate(lengths):
            if length < width:  # this row's left padding: zeros, not the model's pad-token keys
                for layer in self._layers:
                    layer.key_slab[current + i, :, first : self.end - length] = 0
                    layer.value_slab[current + i, :, first : self.end - length] = 0
            self._mask_slab[current + i, self.end - length : self.end] = 1
        self.lengths += list(lengths)
        self._refresh()

    def add(self, cache: DynamicCache, length: int) -> None:
        """Append one prefilled sequence (batch size 1, ``length`` tokens) as the last row."""
        self.add_rows(cache, [length])

    def _refresh(self) -> None:
        self._runs = None
        self.write_column = self.end
        for layer in self._layers:
            layer.refresh()

    def drop(self, rows: list[int]) -> list[int]:
        """Remove ``rows``; the last rows move into their places.

        Returns:
            The old index of each remaining row, in the new order.
        """
        dropped = set(rows)
        kept = [row for row in range(len(self.lengths)) if row not in dropped]
        if not kept:
            self.keep([])
            return []
        count = len(kept)
        holes = [row for row in sorted(dropped) if row < count]
        movers = [row for row in kept if row >= count]
        order = list(range(count))
        for hole, mover in zip(holes, movers, strict=True):
            order[hole] = mover
        self._gather(order, holes, movers)
        return order

    def keep(self, rows: list[int]) -> None:
        """Keep only ``rows`` (in that order); drop the others and unused columns."""
        if not rows:
            self.lengths = []
            if self.cache is not None:
                self._refresh()
            return
        if rows == list(range(len(self.lengths))):
            return
        targets = [i for i, row in enumerate(rows) if row != i]
        self._gather(rows, targets, [rows[i] for i in targets])

    def _gather(self, order: list[int], targets: list[int], sources: list[int]) -> None:
        if targets:
            device = self._mask_slab.device
            to = torch.tensor(targets, device=device)
            source = torch.tensor(sources, device=device)
            # Only the used columns move: cells right of `end` are zero in every row, and
            # those left of `start` are zeroed before `start` moves over them (add_rows).
            used = slice(self.start, self.end)
            for layer in self._layers:
                # Indexing on the right copies first, so overlapping rows are safe.
                layer.key_slab[to, :, used] = layer.key_slab[source, :, used]
                layer.value_slab[to, :, used] = layer.value_slab[source, :, used]
            self._mask_slab[to, used] = self._mask_slab[source, used]
        self.lengths = [self.lengths[row] for row in order]
        self.start = self.end - max(self.lengths)  # leading columns every kept row pads
        self._refresh()

    def sort_rows(self, horizon: int = SORT_HORIZON_STEPS) -> list[int] | None:
        """Reorder the rows longest first when the attention it saves repays the copy.

        Grouped attention (:meth:`segments`) only skips padding when rows of
        similar lengths are neighbours. Sorting copies every row that moves;
        it is done when the cells saved per step times ``horizon`` steps exceed
        the cells copied (read and written).

        Returns:
            The old index of each row in the new order, or None when unchanged.
        """
        if self._runs is not None or len(self.lengths) < 2:
            return None  # nothing changed since the last decision
        lengths = self.lengths
        order = sorted(range(len(lengths)), key=lambda row: -lengths[row])
        current = row_groups(lengths)
        now = groups_cost(lengths, current, GROUP_COST_CELLS)
        ordered = [lengths[row] for row in order]
        runs = row_groups(ordered)
        moved = sum(row != i for i, row in enumerate(order))
        copy = 2 * moved * (self.end - self.start)
        if (now - groups_cost(ordered, runs, GROUP_COST_CELLS)) * horizon <= copy:
            self._runs = current
            return None
        self.keep(order)
        self._runs = runs
        return order

    def segments(self) -> list[tuple[int, int, int]]:
        """(first row, end row, first column) of the row groups for the next decode step.

        Columns count from :attr:`start` (the cache's key column 0); call after
        :meth:`step_inputs`, which adds the step's column.
        """
        if self._runs is None:
            self._runs = row_groups(self.lengths)
        return [
            (first, end, self.end - self.start - max(self.lengths[first:end]))
            for first, end in self._runs
        ]

    def step_inputs(
        self, last_tokens: list[int], four_d: bool = False
    ) -> dict[str, torch.Tensor | bool | None]:
        """Model keyword arguments for one decode step that feeds each row its last token.

        ``four_d`` gives the mask as SDPA uses it, (B, 1, 1, S) additive (0 or
        -inf, in the cache's dtype) or None without padding, so neither the
        model nor each SDPA call rebuilds it (transformers models pass a 4D mask
        through as is; SDPA turns a bool mask into this one at every call).

        The mask gains the new token's column here; the caller passes
        :attr:`cache` under the model's :func:`cache_keyword` and the model
        writes its keys and values into that column.
        """
        rows = len(self.lengths)
        if self.end + 1 > self._mask_slab.shape[1]:  # full: move left (keep room for a prompt)
            end = max(self.end - self.start, self._widest)
            like = self._layers[0].key_slab
            self._allocate(self._mask_slab.shape[0], max(_MIN_COLUMNS, 2 * end + 2), like, end)
        device = self._mask_slab.device
        self._mask_slab[:rows, self.end] = 1
        self.write_column = self.end
        self.end += 1
        positions = torch.tensor(self.lengths, device=device)[:, None]  # (B, 1)
        self.lengths = [length + 1 for length in self.lengths]
        mask = self.mask
        if four_d:  # transformers' SDPA mask for one query per row, made additive once
            if min(self.lengths) == self.end - self.start:
                mask = None  # no padding
            else:
                # What SDPA turns a bool mask into at every call: 0 where attended, -inf elsewhere.
                dtype = self._layers[0].key_slab.dtype
                mask = torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill_(
                    mask == 0, float("-inf")
                )[:, None, None]
        return {
            "input_ids": torch.tensor(last_tokens, device=device)[:, None],  # (B, 1)
            "attention_mask": mask,
            "position_ids": positions,
            "use_cache": True,
        }
