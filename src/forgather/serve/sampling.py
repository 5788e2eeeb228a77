"""Per-request sampling: how one decode step turns a row of logits into a token.

Every sequence in a batch carries its own :class:`SamplingParams` and its own
``torch.Generator``, so a request's ``seed`` reproduces its output whatever
else shares the batch, and greedy and sampled requests decode side by side.

Decision a reader may question: sampled rows are processed one at a time in a
Python loop rather than as one vectorised tensor op. Each row needs its own
generator (``torch.multinomial`` takes one generator per call), and at the
batch sizes a CPU or a single GPU serves (tens of rows) the loop costs far
less than the model's forward pass. Greedy rows are done in one ``argmax``.
Log-probabilities are those of the model's own distribution (before
temperature, top-k and top-p, and before the Hugging Face-style adjustments
``repetition_penalty``, ``no_repeat_ngram_size`` and ``min_tokens``), as OpenAI
documents them.

Every documented parameter value is numerically safe: logits are shifted so
the best is 0 before dividing by the temperature (at least the logits' smallest
normal number), so a temperature of 1e-39 or 5e-324 sends the other tokens to
-inf (greedy) instead of overflowing to NaN. A row
whose logits are themselves not finite gets a :class:`SamplingError` in its
place; the other rows of the batch are unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

SEED_MODULUS = 2**64  # torch generators take seeds in [0, 2**64)


class SamplingError(ValueError):
    """One row could not be sampled (its logits are NaN or infinite)."""


@dataclass(frozen=True)
class SamplingParams:
    """How one sequence is decoded.

    Attributes:
        max_tokens: Most tokens to generate (the stop token included).
        temperature: Softmax temperature; 0 means greedy (argmax).
        top_p: Nucleus sampling: keep the smallest set of tokens whose
            probabilities sum to at least ``top_p``; 1 disables it.
        top_k: Keep the ``top_k`` most likely tokens; 0 disables it.
        seed: Seed of this sequence's generator; None draws a random one.
        stop: Strings that end the text; the match and what follows are cut.
        stop_token_ids: Tokens that end the sequence (usually the EOS ids);
            their text is not returned.
        logprobs: None for no log-probabilities; k >= 0 returns the chosen
            token's log-probability and the k most likely alternatives.
        repetition_penalty: Tokens already in the sequence (prompt included)
            have their logit divided by it (multiplied, when negative), as
            ``generate()`` does; 1 disables it.
        no_repeat_ngram_size: n > 0: never emit a token that would repeat an
            n-gram already in the sequence (prompt included), as ``generate()``.
        min_tokens: Stop tokens cannot be chosen before this many tokens were generated.
    """

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    logprobs: int | None = None
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    min_tokens: int = 0

    @property
    def needs_history(self) -> bool:
        """True when choosing a token depends on the tokens before it."""
        return self.repetition_penalty != 1.0 or self.no_repeat_ngram_size > 0

    def adjusts_logits(self, num_generated: int) -> bool:
        """True when the model's logits must be changed before choosing this row's token."""
        return self.needs_history or (num_generated < self.min_tokens and bool(self.stop_token_ids))

    @property
    def greedy(self) -> bool:
        """True when the next token is always the most likely one."""
        return self.temperature == 0 or self.top_k == 1


@dataclass
class TokenChoice:
    """One decoded token and, when requested, its log-probabilities.

    Attributes:
        token_id: The chosen token.
        logprob: Its log-probability under the model; None unless requested.
        top_logprobs: (token id, log-probability) of the most likely tokens,
            best first; empty unless requested.
    """

    token_id: int
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] = field(default_factory=list)


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A generator for one sequence on ``device``, seeded by ``seed`` or at random.

    Any integer is accepted: it is taken modulo 2**64 (so ``seed + i`` for the
    i-th of ``n`` choices never overflows, and negative seeds are distinct).
    """
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed % SEED_MODULUS)
    return generator


def banned_ngram_tokens(history: list[int], n: int) -> list[int]:
    """Tokens that would complete an ``n``-gram already in ``history`` (``no_repeat_ngram_size``)."""
    if n <= 0 or len(history) + 1 < n:
        return []
    prefix = history[len(history) - (n - 1) :] if n > 1 else []
    return [
        history[i + n - 1] for i in range(len(history) - n + 1) if history[i : i + n - 1] == prefix
    ]


def adjust_logits(
    row: torch.Tensor, params: SamplingParams, history: list[int], num_generated: int
) -> torch.Tensor:
    """(V,) float logits with repetition penalty, n-gram bans and ``min_tokens`` applied.

    Args:
        row: One sequence's next-token logits (not modified).
        params: Its sampling parameters.
        history: Its tokens so far, prompt then generated.
        num_generated: How many of those were generated.
    """
    row = row.clone()
    if params.repetition_penalty != 1.0 and history:
        seen = torch.tensor(sorted(set(history)), device=row.device)
        scores = row[seen]
        penalty = params.repetition_penalty
        row[seen] = torch.where(scores < 0, scores * penalty, scores / penalty)
    banned = banned_ngram_tokens(history, params.no_repeat_ngram_size)
    if banned:
        row[torch.tensor(banned, device=row.device)] = float("-inf")
    if num_generated < params.min_tokens and params.stop_token_ids:
        row[torch.tensor(params.stop_token_ids, device=row.device)] = float("-inf")
    return row


def _filtered_logits(row: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """(V,) logits -> (V,) logits scaled by temperature, with top-k/top-p cut to -inf.

    The order (temperature, then top-k, then top-p) is the one ``generate()`` uses.
    """
    # Shift the best logit to 0 first: dividing by a tiny temperature then gives -inf
    # for the others rather than +inf - inf = NaN in the softmax. A temperature below the
    # dtype's smallest normal number would round to 0 (and the best logit to 0/0 = NaN).
    temperature = max(params.temperature, torch.finfo(row.dtype).tiny)
    scores = (row - row.max()) / temperature
    if 0 < params.top_k < scores.numel():
        kth_best = torch.topk(scores, params.top_k).values[-1]
        scores = scores.masked_fill(scores < kth_best, float("-inf"))
    if params.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        probs = sorted_scores.softmax(dim=-1)
        # Drop a token when the tokens before it already reach top_p; the best one always stays.
        before = probs.cumsum(dim=-1) - probs
        drop_sorted = before >= params.top_p
        drop_sorted[0] = False
        drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def choose_tokens(
    logits: torch.Tensor,
    params: list[SamplingParams],
    generators: list[torch.Generator],
    histories: list[list[int]] | None = None,
    num_generated: list[int] | None = None,
) -> list[TokenChoice | SamplingError]:
    """Pick the next token of every row.

    Args:
        logits: (B, V) next-token logits, one row per sequence.
        params: The B sequences' sampling parameters.
        generators: The B sequences' generators (see :func:`make_generator`).
        histories: Each row's tokens so far (prompt, then generated); needed
            for ``repetition_penalty`` and ``no_repeat_ngram_size``.
        num_generated: Tokens each row has generated (for ``min_tokens``); default 0.

    Returns:
        B choices, in row order; a :class:`SamplingError` in place of the
        choice of a row whose logits are NaN or +inf.
    """
    logits = logits.float()
    # NaN or +inf anywhere in a row leaves no distribution to sample (-inf is a masked token).
    # One reduction: a row's max is NaN if it holds a NaN (amax propagates it), else +inf if
    # it holds +inf.
    best = logits.amax(dim=-1)
    broken = (best.isnan() | (best == float("inf"))).tolist()
    generated = num_generated or [0] * len(params)
    scores = logits  # what tokens are chosen from; logprobs stay the model's own
    for row, p in enumerate(params):
        if p.adjusts_logits(generated[row]) and not broken[row]:
            if scores is logits:
                scores = logits.clone()
            history = histories[row] if histories is not None else []
            scores[row] = adjust_logits(logits[row], p, history, generated[row])
    token_ids = scores.argmax(dim=-1).tolist()  # greedy for every row; sampled rows overwrite
    for row, p in enumerate(params):
        if not p.greedy and not broken[row]:
            probs = _filtered_logits(scores[row], p).softmax(dim=-1)
            token_ids[row] = int(torch.multinomial(probs, 1, generator=generators[row]))
    choices: list[TokenChoice | SamplingError] = [
        SamplingError("the model produced non-finite logits") if bad else TokenChoice(token_id)
        for token_id, bad in zip(token_ids, broken, strict=True)
    ]
    wanted = [row for row, p in enumerate(params) if p.logprobs is not None and not broken[row]]
    if wanted:
        logprobs = torch.log_softmax(logits[wanted], dim=-1)  # (W, V)
        for i, row in enumerate(wanted):
            choice = choices[row]
            choice.logprob = float(logprobs[i, choice.token_id])
            k = params[row].logprobs or 0
            if k > 0:
                values, ids = torch.topk(logprobs[i], k)
                choice.top_logprobs = list(zip(ids.tolist(), values.tolist(), strict=True))
    return choices
