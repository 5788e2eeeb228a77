"""From a validated request to what the scheduler runs: token ids and sampling params.

This is where a request meets the model's limits: prompts are tokenized (chat
messages through the chat template), checked against the context length, and
each choice gets its :class:`SamplingParams` (the model's stop tokens, a
``max_tokens`` that fits, ``seed + i`` for the i-th choice).

Decision a reader may question: when the request gives no ``max_tokens``,
completions default to 16 (OpenAI's documented default for that endpoint)
and chat to the rest of the context, clipped so prompt + completion always
fit; an explicit ``max_tokens`` that does not fit is a 400, never silently
shortened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forgather.serve.errors import APIError
from forgather.serve.protocol import ChatCompletionRequest, CompletionRequest
from forgather.serve.sampling import SamplingParams
from forgather.serve.scheduler import BatchScheduler

COMPLETION_DEFAULT_MAX_TOKENS = 16


@dataclass
class ServedModel:
    """Everything the endpoints need about the model being served.

    Attributes:
        name: The name clients pass as ``model``.
        tokenizer: Its tokenizer (with a chat template for chat requests).
        scheduler: The batch scheduler running the model.
        context_length: Most tokens of prompt + completion.
        stop_token_ids: Tokens that end a sequence (the EOS ids, and the
            server's stop sequences that are single special tokens).
        created: Unix time the server started.
        stop_strings: Stop strings added to every request (``inf server -s``).
    """

    name: str
    tokenizer: Any
    scheduler: BatchScheduler
    context_length: int
    stop_token_ids: tuple[int, ...]
    created: int
    stop_strings: tuple[str, ...] = ()


def stop_token_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    """The EOS ids of the model's generation config and of the tokenizer."""
    ids: set[int] = set()
    generation_config = getattr(model, "generation_config", None)
    for eos in (getattr(generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(eos, int):
            ids.add(eos)
        elif isinstance(eos, list | tuple):
            ids.update(eos)
    return tuple(sorted(ids))


def split_stop_sequences(
    tokenizer: Any, sequences: Sequence[str]
) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Server stop sequences as (token ids, strings).

    A sequence that is one special token of the tokenizer (``<|im_end|>``)
    becomes a stop token: special tokens are not part of the decoded text, so
    a stop string could never see it. Anything else is a stop string.
    """
    special = set(getattr(tokenizer, "all_special_tokens", ())) | {
        str(t) for t in getattr(tokenizer, "added_tokens_decoder", {}).values()
        if getattr(t, "special", False)
    }  # fmt: skip
    ids: list[int] = []
    strings: list[str] = []
    for sequence in sequences:
        if sequence in special:
            ids.append(tokenizer.convert_tokens_to_ids(sequence))
        elif sequence:
            strings.append(sequence)
    return tuple(ids), tuple(strings)


def check_model_name(served: ServedModel, requested: str | None) -> None:
    """Raise a 404 unless ``requested`` is None or the served model's name."""
    if requested is not None and requested != served.name:
        raise APIError(
            404,
            f"the model {requested!r} does not exist; this server serves {served.name!r}",
            param="model",
            code="model_not_found",
        )


def completion_prompts(served: ServedModel, request: CompletionRequest) -> list[list[int]]:
    """Token ids of each prompt of a completion request."""
    vocab_size = len(served.tokenizer)
    prompts = []
    for prompt in request.prompts():
        if isinstance(prompt, str):
            ids = served.tokenizer(prompt)["input_ids"]
        else:
            if any(not 0 <= token < vocab_size for token in prompt):
                raise APIError(400, f"token ids must be in [0, {vocab_size})", param="prompt")
            ids = list(prompt)
        if not ids:
            raise APIError(400, "the prompt is empty", param="prompt")
        prompts.append(ids)
    return prompts


def chat_prompt(served: ServedModel, request: ChatCompletionRequest) -> list[int]:
    """Token ids of the chat messages rendered by the chat template.

    Raises:
        APIError: 400 when there is no chat template or it rejects the messages.
    """
    from jinja2 import TemplateError

    tokenizer = served.tokenizer
    if not getattr(tokenizer, "chat_template", None):
        raise APIError(
            400,
            "this model's tokenizer has no chat template; start the server with "
            "--chat-template FILE, or use /v1/completions",
            param="messages",
        )
    messages = [message.as_template_input() for message in request.messages]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError as error:
        raise APIError(
            400, f"the chat template rejected the messages: {error}", "messages"
        ) from None
    # The template writes any BOS itself.
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def sampling_params(
    served: ServedModel,
    request: CompletionRequest | ChatCompletionRequest,
    prompt_length: int,
    requested_max_tokens: int | None,
    default_max_tokens: int | None,
    logprobs: int | None,
    choice_seed: int | None,
) -> SamplingParams:
    """The sampling parameters of one choice.

    Args:
        served: The served model.
        request: The validated request.
        prompt_length: Tokens in this choice's prompt.
        requested_max_tokens: ``max_tokens`` as given, or None.
        default_max_tokens: Used when none is given; None means "the rest of the context".
        logprobs: None, or how many alternatives to return per token.
        choice_seed: This choice's seed, or None.

    Raises:
        APIError: 400 when the prompt, or prompt + ``max_tokens``, exceeds the context.
    """
    context = served.context_length
    param = "messages" if isinstance(request, ChatCompletionRequest) else "prompt"
    if prompt_length >= context:
        raise APIError(
            400,
            f"this model's maximum context length is {context} tokens; the prompt has "
            f"{prompt_length}, leaving no room for a completion",
            param=param,
            code="context_length_exceeded",
        )
    room = context - prompt_length
    if requested_max_tokens is not None and requested_max_tokens > room:
        raise APIError(
            400,
            f"this model's maximum context length is {context} tokens; you requested "
            f"{prompt_length + requested_max_tokens} ({prompt_length} in the prompt, "
            f"{requested_max_tokens} for the completion)",
            param="max_tokens",
            code="context_length_exceeded",
        )
    max_tokens = requested_max_tokens or min(default_max_tokens or room, room)
    min_tokens = max(request.min_tokens or 0, (request.min_length or 0) - prompt_length, 0)
    stops = request.stop_strings()
    stops += tuple(s for s in served.stop_strings if s not in stops)
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        top_k=max(request.top_k or 0, 0),  # -1 and 0 both mean "off"
        seed=choice_seed,
        stop=stops,
        stop_token_ids=() if request.ignore_eos else served.stop_token_ids,
        logprobs=logprobs,
        repetition_penalty=request.repetition_penalty or 1.0,
        no_repeat_ngram_size=request.no_repeat_ngram_size or 0,
        min_tokens=min_tokens,
    )
