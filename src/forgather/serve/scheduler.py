"""Continuous batching: one background thread decodes every running request together.

    scheduler = BatchScheduler(model, tokenizer, max_batch_size=16)
    scheduler.start()
    [result] = scheduler.generate([prompt_ids], SamplingParams(max_tokens=32, temperature=0))
    scheduler.stop()

Requests wait in a FIFO queue; each loop iteration admits waiting requests
(prefilling them together, left-padded, and copying their keys and values into
the batch) while the batch has fewer than ``max_batch_size`` rows and their reserved tokens (prompt +
``max_tokens``) fit ``max_batch_tokens``, then runs one decode step for all
rows. A row leaves the moment it finishes or is cancelled, so a request joins
and leaves the batch at any step. Output is delivered per token through a
callback, called on the scheduler thread.

Decision a reader may question: we do not use transformers'
``ContinuousBatchingManager``. It decodes greedily and exactly on CPU, but it
samples all rows with one global RNG (no per-request ``seed``), decides greedy
vs sampling once for the whole manager, returns log-probabilities after
temperature/top-k (0.0 for a greedy token), has no stop strings, and needs the
paged-attention path of the model. This scheduler needs only what batched
``generate()`` needs (see ``kv_batch.py``); docs/serving.md has the details.
"""

from __future__ import annotations

import collections
import inspect
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from forgather.ml.trainer.model_loss import logits_of
from forgather.serve import segmented_attention
from forgather.serve.detokenize import IncrementalDetokenizer, StopStringFilter
from forgather.serve.kv_batch import (
    PaddedKVBatch,
    cache_keyword,
    cheapest_runs,
    check_cache_supported,
)
from forgather.serve.sampling import (
    SamplingError,
    SamplingParams,
    TokenChoice,
    choose_tokens,
    make_generator,
)
from forgather.serve.threads import ThreadTuner

logger = logging.getLogger(__name__)


class Overloaded(Exception):
    """The waiting queue is full; the request was not accepted."""


@dataclass
class SequenceOutput:
    """What one sequence produced since its previous output.

    Attributes:
        text: New text (stop strings and special tokens removed).
        tokens: The tokens behind it (without a final stop token).
        finish_reason: None while running; then ``"stop"`` (stop token or
            string), ``"length"`` (``max_tokens`` reached) or ``"error"``.
        num_generated: Tokens generated so far, the stop token included.
        error: The error message when ``finish_reason == "error"``.
    """

    text: str
    tokens: list[TokenChoice]
    finish_reason: str | None
    num_generated: int
    error: str | None = None


@dataclass
class GenerationRequest:
    """One sequence to generate.

    Attributes:
        prompt_ids: The prompt's token ids.
        params: How to decode it.
        on_output: Called on the scheduler thread with each :class:`SequenceOutput`;
            the last one has a ``finish_reason``. It must return quickly.
        stream: Deliver text as it is produced; False delivers it all in the
            final output (one call instead of one per token).
    """

    prompt_ids: list[int]
    params: SamplingParams
    on_output: Callable[[SequenceOutput], None]
    stream: bool = True


@dataclass
class _Sequence:
    """Scheduler-side state of one request."""

    id: int
    request: GenerationRequest
    generator: torch.Generator
    detokenizer: IncrementalDetokenizer
    stop_filter: StopStringFilter
    num_generated: int = 0
    last_token: int = -1
    unsent: list[TokenChoice] = field(default_factory=list)  # tokens of text not yet delivered
    unsent_text: str = ""
    # Prompt + generated tokens: kept when sampling needs them, or without a KV cache.
    history: list[int] = field(default_factory=list)

    @property
    def reserved_tokens(self) -> int:
        return len(self.request.prompt_ids) + self.request.params.max_tokens


class BatchScheduler:
    """Runs the batch loop on a background thread.

    Args:
        model: A causal LM (``model(input_ids, attention_mask, position_ids,
            cache | past_key_values, use_cache)`` returning ``.logits``), in eval mode.
        tokenizer: Its tokenizer (for detokenizing).
        max_batch_size: Most sequences decoded in one step.
        max_batch_tokens: Token budget: the prompt + ``max_tokens`` of the
            running sequences sum to at most this (a sequence larger than the
            budget runs alone).
        max_waiting: Most sequences waiting to start; :meth:`submit` raises
            :class:`Overloaded` beyond it.
        use_cache: False recomputes every sequence from its first token at each
            step, one sequence at a time (``inf server --disable-kv-cache``: for
            models whose cache is broken or unsupported; slow).
        max_prefill_tokens: Prompts admitted together are prefilled in one
            forward pass while their count times the longest one's length
            stays within this.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_batch_size: int = 16,
        max_batch_tokens: int = 32768,
        max_waiting: int = 256,
        use_cache: bool = True,
        max_prefill_tokens: int = 2048,
    ) -> None:
        if use_cache:
            check_cache_supported(model.config)
        self.use_cache = use_cache
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_waiting = max_waiting
        self.max_prefill_tokens = max_prefill_tokens
        self._device = next(model.parameters()).device
        # Only pass `logits_to_keep` to models that take it (saves a (T, V) logits tensor).
        parameters = _forward_parameters(model)
        # The original Forgather's models return bare logits unless asked for a dict.
        self._forward_kwargs = {"return_dict": True} if "return_dict" in parameters else {}
        self._prefill_kwargs = {
            **self._forward_kwargs,
            **({"logits_to_keep": 1} if "logits_to_keep" in parameters else {}),
        }
        self._cache_keyword = cache_keyword(model)
        # Decode attention per group of similar-length rows (segmented_attention.enable says
        # which models).
        self._segmented = use_cache and segmented_attention.enable(model)
        self._threads = ThreadTuner(torch.get_num_threads())
        self._ids = itertools.count()
        self._lock = threading.Condition()
        self._waiting: collections.deque[_Sequence] = collections.deque()
        self._cancelled: set[int] = set()
        self._running: list[_Sequence] = []
        self._batch = PaddedKVBatch(model.config)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.counters = {"completed": 0, "cancelled": 0, "failed": 0, "generated_tokens": 0}

    # ----------------------------------------------------------- public API

    def start(self) -> None:
        """Start the background thread."""
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="forgather-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; requests still running or waiting get no more output."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def submit(self, requests: Sequence[GenerationRequest]) -> list[int]:
        """Queue sequences, all or none.

        Returns:
            Their ids (for :meth:`cancel`).

        Raises:
            Overloaded: The waiting queue cannot take them all.
        """
        with self._lock:
            if len(self._waiting) + len(requests) > self.max_waiting:
                raise Overloaded(
                    f"{len(self._waiting)} requests are waiting (at most {self.max_waiting})"
                )
            sequences = [self._new_sequence(request) for request in requests]
            self._waiting.extend(sequences)
            self._lock.notify()
        return [sequence.id for sequence in sequences]

    def cancel(self, ids: Sequence[int]) -> None:
        """Drop sequences (waiting or running); they produce no more output."""
        with self._lock:
            self._cancelled.update(ids)
            self._lock.notify()

    def stats(self) -> dict[str, int]:
        """Counts of running and waiting sequences, and totals since start."""
        with self._lock:
            return {"running": len(self._running), "waiting": len(self._waiting), **self.counters}

    def generate(
        self, prompts: Sequence[list[int]], params: SamplingParams
    ) -> list[tuple[str, str, int]]:
        """Generate for several prompts and wait (a convenience for scripts).

        Returns:
            Per prompt: (text, finish_reason, number of generated tokens).
        """
        done = threading.Semaphore(0)
        results: list[list[str | int | None]] = [["", None, 0] for _ in prompts]

        def collector(index: int) -> Callable[[SequenceOutput], None]:
            def on_output(output: SequenceOutput) -> None:
                results[index][0] += output.text
                if output.finish_reason is not None:
                    results[index][1:] = [output.finish_reason, output.num_generated]
                    done.release()

            return on_output

        self.submit([GenerationRequest(p, params, collector(i)) for i, p in enumerate(prompts)])
        for _ in prompts:
            done.acquire()
        return [tuple(result) for result in results]

    # -------------------------------------------------------- scheduler thread

    def _new_sequence(self, request: GenerationRequest) -> _Sequence:
        keep_history = request.params.needs_history or not self.use_cache
        return _Sequence(
            id=next(self._ids),
            request=request,
            generator=make_generator(request.params.seed, self._device),
            detokenizer=IncrementalDetokenizer(self.tokenizer),
            stop_filter=StopStringFilter(request.params.stop),
            history=list(request.prompt_ids) if keep_history else [],
        )

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                admitted: list[_Sequence] = []
                try:
                    with self._lock:
                        while not (
                            self._stopping or self._waiting or self._running or self._cancelled
                        ):
                            self._lock.wait()
                        if self._stopping:
                            return
                        self._drop_cancelled()
                        admitted = self._take_admissible()
                    if admitted:
                        self._prefill_all(admitted)
                    if self._running:
                        self._decode_step()
                except Exception as error:  # a bug here must not leave every client waiting
                    self._recover(admitted, error)

    def _recover(self, admitted: list[_Sequence], error: Exception) -> None:
        """Fail the sequences in flight and waiting after an unexpected error; go on empty.

        Prefill and decode already fail only the requests they cannot serve;
        this is for what escapes them, so the thread goes on serving.
        """
        logger.exception("batch loop failed; failing the requests in flight and waiting")
        running = {id(s) for s in self._running}
        failed = self._running + [s for s in admitted if id(s) not in running]
        with self._lock:  # the error may be in admitting them: they would wait forever
            failed += self._waiting
            self._waiting.clear()
        self._running = []
        if self.use_cache:
            self._batch.keep([])
        self._fail(failed, error)

    def _drop_cancelled(self) -> None:
        """(Lock held.) Remove cancelled sequences from the queue and the batch."""
        if not self._cancelled:
            return
        cancelled, self._cancelled = self._cancelled, set()
        before = len(self._waiting) + len(self._running)
        self._waiting = collections.deque(s for s in self._waiting if s.id not in cancelled)
        self._remove_rows([row for row, s in enumerate(self._running) if s.id in cancelled])
        self.counters["cancelled"] += before - len(self._waiting) - len(self._running)

    def _take_admissible(self) -> list[_Sequence]:
        """(Lock held.) Pop the waiting sequences that fit the batch size and token budget."""
        reserved = sum(s.reserved_tokens for s in self._running)
        admitted: list[_Sequence] = []
        while self._waiting and len(self._running) + len(admitted) < self.max_batch_size:
            candidate = self._waiting[0]
            busy = self._running or admitted
            if busy and reserved + candidate.reserved_tokens > self.max_batch_tokens:
                break
            admitted.append(self._waiting.popleft())
            reserved += candidate.reserved_tokens
        return admitted

    def _prefill_all(self, sequences: list[_Sequence]) -> None:
        """Prefill newly admitted sequences, together in groups of at most
        ``max_prefill_tokens`` padded prompt tokens (a longer prompt alone)."""
        if not self.use_cache:
            for sequence in sequences:
                self._prefill([sequence])
            return
        # Shortest first: prompts of similar lengths share a group, so little of it is padding.
        ordered = sorted(sequences, key=lambda s: len(s.request.prompt_ids))
        lengths = [len(s.request.prompt_ids) for s in ordered]
        for first, end in prefill_groups(lengths, self.max_prefill_tokens):
            self._prefill(ordered[first:end])

    def _prefill(self, group: list[_Sequence]) -> None:
        """Run the prompts together, emit their first tokens, and add the rows to the batch.

        One prompt runs alone exactly as ``generate()`` runs it; several are
        left-padded with a padding mask, as batched ``generate()`` does. When a
        group fails, each prompt is retried alone, so a bad prompt fails only itself.
        """
        prompts = [sequence.request.prompt_ids for sequence in group]
        try:
            logits, cache = self._prefill_forward(prompts)
            choices = choose_tokens(
                logits,
                [s.request.params for s in group],
                [s.generator for s in group],
                [s.history for s in group],
                [0] * len(group),
            )
        except Exception as error:  # a bad prompt must not stop the server
            if len(group) > 1:
                for sequence in group:
                    self._prefill([sequence])
                return
            logger.exception("prefill failed")
            self._fail(group, error)
            return
        joining = []
        for row, (sequence, choice) in enumerate(zip(group, choices, strict=True)):
            if isinstance(choice, SamplingError):
                self._fail([sequence], choice)
            elif not self._advance(sequence, choice):
                joining.append(row)
        if joining and self.use_cache:  # the model appended the prompts' keys/values
            self._batch.add_rows(cache, [len(prompts[row]) for row in joining], joining)
        self._running += [group[row] for row in joining]

    def _prefill_forward(self, prompts: list[list[int]]) -> tuple[torch.Tensor, Any]:
        """(n, V) next-token logits of left-padded ``prompts``, and their cache (None without)."""
        width = max(len(prompt) for prompt in prompts)
        # Any valid id pads: padding columns are masked out and their keys zeroed in the batch.
        input_ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts], device=self._device)
        inputs: dict[str, Any] = {"input_ids": input_ids}
        if any(len(prompt) < width for prompt in prompts):
            mask = torch.tensor(
                [[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self._device
            )
            inputs["attention_mask"] = mask
            inputs["position_ids"] = (mask.cumsum(dim=1) - 1).clamp(min=0)
        if not self.use_cache:
            output = self.model(**inputs, use_cache=False, **self._prefill_kwargs)
            return logits_of(output)[:, -1], None
        cache = DynamicCache(config=self.model.config)
        output = self.model(
            **inputs, use_cache=True, **{self._cache_keyword: cache}, **self._prefill_kwargs
        )
        return logits_of(output)[:, -1], cache

    def _decode_step(self) -> None:
        """Feed every running row its last token and advance each by one token."""
        running = self._running
        threads = self._threads.next_threads()
        if self._threads.enabled and threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        started = time.perf_counter()
        try:
            if self._segmented:
                order = self._batch.sort_rows()
                if order is not None:
                    running = self._running = [running[row] for row in order]
            if self.use_cache:
                inputs = self._batch.step_inputs(
                    [s.last_token for s in running], four_d=self._segmented
                )
                segments = self._batch.segments() if self._segmented else []
                with segmented_attention.decode_segments(segments):
                    output = self.model(
                        **inputs, **{self._cache_keyword: self._batch.cache}, **self._forward_kwargs
                    )
                logits = logits_of(output)[:, -1]
            else:  # the whole sequence again, one row at a time (no padding to get right)
                logits = torch.cat([self._uncached_logits(s.history) for s in running])
            choices = choose_tokens(
                logits,
                [s.request.params for s in running],
                [s.generator for s in running],
                [s.history for s in running],
                [s.num_generated for s in running],
            )
        except Exception as error:
            logger.exception("decode step failed")
            failed, self._running = self._running, []
            if self.use_cache:
                self._batch.keep([])
            self._fail(failed, error)
            return
        self._threads.record(threads, len(running), time.perf_counter() - started)
        finished = []
        for row, (sequence, choice) in enumerate(zip(self._running, choices, strict=True)):
            if isinstance(choice, SamplingError):
                self._fail([sequence], choice)  # only this row: the others go on
                finished.append(row)
            elif self._advance(sequence, choice):
                finished.append(row)
        self._remove_rows(finished)

    def _remove_rows(self, rows: list[int]) -> None:
        """Drop these rows of the batch (the batch may reorder the others)."""
        if not rows:
            return
        if self.use_cache:
            order = self._batch.drop(rows)
        else:
            dropped = set(rows)
            order = [row for row in range(len(self._running)) if row not in dropped]
        self._running = [self._running[row] for row in order]

    def _uncached_logits(self, tokens: list[int]) -> torch.Tensor:
        """(1, V) next-token logits of ``tokens``, computed without a KV cache."""
        input_ids = torch.tensor([tokens], device=self._device)
        output = self.model(input_ids=input_ids, use_cache=False, **self._prefill_kwargs)
        return logits_of(output)[:, -1]

    def _advance(self, sequence: _Sequence, choice: TokenChoice) -> bool:
        """Record one new token, deliver any new text; return True if the sequence ended."""
        params = sequence.request.params
        stop_filter = sequence.stop_filter
        sequence.num_generated += 1
        sequence.last_token = choice.token_id
        if params.needs_history or not self.use_cache:
            sequence.history.append(choice.token_id)
        self.counters["generated_tokens"] += 1
        hit_stop_token = choice.token_id in params.stop_token_ids
        text = ""
        if not hit_stop_token:
            sequence.unsent.append(choice)
            text = stop_filter.push(sequence.detokenizer.push(choice.token_id))
        finish_reason = None
        if hit_stop_token or stop_filter.stopped:
            finish_reason = "stop"
        elif sequence.num_generated >= params.max_tokens:
            finish_reason = "length"
        if finish_reason is not None and not stop_filter.stopped:
            # Release held-back text; a stop string may still complete inside it.
            text += stop_filter.push(sequence.detokenizer.flush())
            if stop_filter.stopped:
                finish_reason = "stop"
            text += stop_filter.flush()
        if finish_reason is not None:
            self.counters["completed"] += 1
        sequence.unsent_text += text
        if finish_reason is not None or (sequence.unsent_text and sequence.request.stream):
            output = SequenceOutput(
                sequence.unsent_text, sequence.unsent, finish_reason, sequence.num_generated
            )
            sequence.unsent, sequence.unsent_text = [], ""
            self._deliver(sequence, output)
        return finish_reason is not None

    def _fail(self, sequences: list[_Sequence], error: Exception) -> None:
        self.counters["failed"] += len(sequences)
        for sequence in sequences:
            output = SequenceOutput("", [], "error", sequence.num_generated, error=str(error))
            self._deliver(sequence, output)

    def _deliver(self, sequence: _Sequence, output: SequenceOutput) -> None:
        try:
            sequence.request.on_output(output)
        except Exception:  # the receiver is gone (e.g. its event loop closed): drop the row
            logger.exception("output callback failed; cancelling sequence %d", sequence.id)
            with self._lock:
                self._cancelled.add(sequence.id)


PREFILL_GROUP_COST_TOKENS = 48  # a forward pass's fixed cost, in prompt tokens (CPU, 4.4M model)


def prefill_groups(
    lengths: list[int], max_tokens: int, group_cost: int = PREFILL_GROUP_COST_TOKENS
) -> list[tuple[int, int]]:
    """Split prompts sorted by length into runs to prefill together, least padding first.

    Each run is left-padded to its longest (last) prompt; it costs its padded
    tokens plus ``group_cost``, and holds at most ``max_tokens`` padded tokens
    unless it is a single prompt (exact dynamic programme, O(n^2)).

    Returns:
        (first, end) indices of each run, in order, covering all prompts.
    """
    return cheapest_runs(lengths, group_cost, max_tokens)


def _forward_parameters(model: Any) -> set[str]:
    return set(inspect.signature(model.forward).parameters)
