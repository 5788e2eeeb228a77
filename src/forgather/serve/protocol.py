"""The request bodies of ``/v1/completions`` and ``/v1/chat/completions``.

Field names, types, ranges and defaults follow OpenAI's API; ``top_k`` is an
extension vLLM also accepts (the ``openai`` client sends it through
``extra_body``), and so are ``ignore_eos`` (generate exactly ``max_tokens``,
as benchmarks want), ``repetition_penalty`` and ``min_tokens``. The original
Forgather's client sends Hugging Face ``generate()`` names the same way:
``repetition_penalty``, ``no_repeat_ngram_size`` and ``min_length`` (prompt +
completion tokens, as ``generate()`` counts) are honoured; ``num_beams`` > 1,
``typical_p`` and ``length_penalty`` are refused with a 400 naming them.

Decision a reader may question: unknown fields are ignored rather than
rejected, because clients routinely send fields a small server has no use
for (``user``, ``metadata``, ``store``). Known fields whose non-default values
we cannot honour (OpenAI's penalties, ``logit_bias``, ``echo`` with ``logprobs``,
beam search, tools) are rejected
with a 400 naming the field, so nobody silently gets a different behaviour.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from forgather.serve.errors import APIError

MAX_STOP_STRINGS = 16


def _has_lone_surrogate(value: Any) -> bool:
    """True if a string anywhere in ``value`` holds a lone UTF-16 surrogate (from a ``\\ud800`` escape).

    Such a string has no UTF-8 encoding, so no tokenizer can take it.
    """
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, BaseModel):
        value = value.__dict__
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_lone_surrogate(item) for item in value)
    return False


class StreamOptions(BaseModel):
    """``stream_options``: ``include_usage`` adds a final chunk with token counts."""

    model_config = ConfigDict(extra="ignore", strict=True)
    include_usage: bool = False


class _SamplingFields(BaseModel):
    """Fields both endpoints share."""

    model_config = ConfigDict(extra="ignore", strict=True)

    model: str | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=-1)
    ignore_eos: bool = False
    n: int = Field(1, ge=1, le=16)
    stop: str | list[str] | None = None
    # OpenAI documents seed as a 64-bit integer; larger values are a 400, not a crash.
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    logit_bias: dict[str, float] | None = None
    repetition_penalty: float | None = Field(None, gt=0.0)
    no_repeat_ngram_size: int | None = Field(None, ge=0)
    min_tokens: int | None = Field(None, ge=0)
    min_length: int | None = Field(None, ge=0)
    num_beams: int | None = Field(None, ge=1)
    typical_p: float | None = None
    length_penalty: float | None = None

    def stop_strings(self) -> tuple[str, ...]:
        """``stop`` as a tuple of strings."""
        if self.stop is None:
            return ()
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        if len(stops) > MAX_STOP_STRINGS:
            raise APIError(400, f"at most {MAX_STOP_STRINGS} stop strings", param="stop")
        return stops

    def check_supported(self) -> None:
        """Reject values this server cannot honour.

        Raises:
            APIError: 400 naming the field.
        """
        for name, value in self.__dict__.items():
            if _has_lone_surrogate(value):
                raise APIError(
                    400,
                    f"{name} holds a lone surrogate (an unpaired \\ud800-\\udfff escape), "
                    "which is not valid Unicode text",
                    param=name,
                    code="invalid_unicode",
                )
        for name in ("frequency_penalty", "presence_penalty"):
            if getattr(self, name) not in (None, 0, 0.0):
                raise APIError(400, f"{name} is not supported", param=name)
        if self.logit_bias:
            raise APIError(400, "logit_bias is not supported", param="logit_bias")
        if self.num_beams not in (None, 1):
            raise APIError(
                400,
                "num_beams > 1 (beam search) is not supported; use n for several sampled choices",
                param="num_beams",
            )
        if self.typical_p not in (None, 1, 1.0):
            raise APIError(400, "typical_p is not supported", param="typical_p")
        if self.length_penalty not in (None, 1, 1.0):
            raise APIError(
                400, "length_penalty is not supported (it applies to beam search)",
                param="length_penalty",
            )  # fmt: skip
        if self.stream_options is not None and not self.stream:
            raise APIError(400, "stream_options needs stream=true", param="stream_options")

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class CompletionRequest(_SamplingFields):
    """``POST /v1/completions``."""

    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(16, ge=1)
    logprobs: int | None = Field(None, ge=0, le=5)
    echo: bool = False
    suffix: str | None = None
    best_of: int | None = None

    def check_supported(self) -> None:
        super().check_supported()
        if self.echo and self.logprobs is not None:
            raise APIError(400, "echo together with logprobs is not supported", param="echo")
        if self.suffix:
            raise APIError(400, "suffix is not supported", param="suffix")
        if self.best_of not in (None, self.n):
            raise APIError(400, "best_of must equal n", param="best_of")
        if isinstance(self.prompt, list) and not self.prompt:
            raise APIError(400, "prompt must not be empty", param="prompt")

    def prompts(self) -> list[str | list[int]]:
        """The prompts: each a string or a list of token ids."""
        if isinstance(self.prompt, str):
            return [self.prompt]
        if all(isinstance(item, int) for item in self.prompt):
            return [list(self.prompt)]
        return list(self.prompt)


class TextPart(BaseModel):
    """One part of a message's content given as a list."""

    model_config = ConfigDict(extra="ignore", strict=True)
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One chat message."""

    model_config = ConfigDict(extra="ignore", strict=True)
    role: str
    content: str | list[TextPart] | None = None
    name: str | None = None

    def as_template_input(self) -> dict[str, Any]:
        """The message as chat templates expect it: ``{"role", "content"}`` strings."""
        content = self.content
        if isinstance(content, list):
            content = "".join(part.text for part in content)
        message = {"role": self.role, "content": content or ""}
        if self.name is not None:
            message["name"] = self.name
        return message


class ChatCompletionRequest(_SamplingFields):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None

    def check_supported(self) -> None:
        super().check_supported()
        if self.tools:
            raise APIError(400, "tools are not supported", param="tools")
        if self.response_format and self.response_format.get("type") != "text":
            raise APIError(400, "only response_format text is supported", param="response_format")
        if self.top_logprobs is not None and not self.logprobs:
            raise APIError(400, "top_logprobs needs logprobs=true", param="top_logprobs")

    @property
    def requested_max_tokens(self) -> int | None:
        """``max_completion_tokens`` (the newer name) or ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def logprobs_count(self) -> int | None:
        """None, or how many alternatives to return per token."""
        return (self.top_logprobs or 0) if self.logprobs else None
