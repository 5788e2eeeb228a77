"""JSON bodies of completion and chat responses, whole or as stream chunks.

Two formats share one shape of data: :class:`CompletionFormat` writes
``/v1/completions`` objects (``text_completion``), :class:`ChatFormat` writes
``/v1/chat/completions`` ones (``chat.completion`` and
``chat.completion.chunk``). The endpoint code collects text, tokens and
finish reasons; these classes only know the field names.

Decision a reader may question: bodies are plain dicts rather than pydantic
response models, because every token of a stream builds one and the field
set is small and fixed; the tests check the bodies through the ``openai``
client's own parsers.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from forgather.serve.sampling import TokenChoice


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The ``usage`` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class _Format:
    """What both formats share: id, creation time, model name, token text."""

    object_name: str
    chunk_object_name: str
    id_prefix: str

    def __init__(self, model_name: str, tokenizer: Any) -> None:
        self.id = f"{self.id_prefix}-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model_name = model_name
        self._tokenizer = tokenizer

    def _token_text(self, token_id: int) -> str:
        return self._tokenizer.decode([token_id])

    def _envelope(self, object_name: str, choices: list[dict], **extra: Any) -> dict:
        return {
            "id": self.id,
            "object": object_name,
            "created": self.created,
            "model": self.model_name,
            "choices": choices,
            **extra,
        }

    def response(self, choices: list[dict], usage_counts: dict[str, int]) -> dict:
        """The whole (non-streamed) response."""
        return self._envelope(self.object_name, choices, usage=usage_counts)

    def chunk(self, choices: list[dict], include_usage: bool) -> dict:
        """One stream chunk; ``usage`` is null on all but the last when requested."""
        extra = {"usage": None} if include_usage else {}
        return self._envelope(self.chunk_object_name, choices, **extra)

    def usage_chunk(self, usage_counts: dict[str, int]) -> dict:
        """The final chunk of a stream with ``include_usage``: no choices, the counts."""
        return self._envelope(self.chunk_object_name, [], usage=usage_counts)


class CompletionFormat(_Format):
    """``/v1/completions`` bodies."""

    object_name = chunk_object_name = "text_completion"
    id_prefix = "cmpl"

    def logprobs(self, tokens: list[TokenChoice], text_offset: int) -> dict:
        """The legacy logprobs object; ``text_offset`` is where the first token's text starts."""
        texts = [self._token_text(t.token_id) for t in tokens]
        offsets = []
        for text in texts:
            offsets.append(text_offset)
            text_offset += len(text)
        return {
            "tokens": texts,
            "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [{self._token_text(i): lp for i, lp in t.top_logprobs} for t in tokens],
            "text_offset": offsets,
        }

    def choice(
        self,
        index: int,
        text: str,
        finish_reason: str | None,
        tokens: list[TokenChoice] | None = None,
        text_offset: int = 0,
    ) -> dict:
        """One choice (whole or a chunk's); ``tokens`` only when logprobs were asked for."""
        return {
            "index": index,
            "text": text,
            "logprobs": None if tokens is None else self.logprobs(tokens, text_offset),
            "finish_reason": finish_reason,
        }


class ChatFormat(_Format):
    """``/v1/chat/completions`` bodies."""

    object_name = "chat.completion"
    chunk_object_name = "chat.completion.chunk"
    id_prefix = "chatcmpl"

    def _entry(self, token_id: int, logprob: float | None) -> dict:
        text = self._token_text(token_id)
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    def logprobs(self, tokens: list[TokenChoice]) -> dict:
        """The chat logprobs object: ``{"content": [...]}``."""
        content = []
        for t in tokens:
            entry = self._entry(t.token_id, t.logprob)
            entry["top_logprobs"] = [self._entry(i, lp) for i, lp in t.top_logprobs]
            content.append(entry)
        return {"content": content}

    def choice(
        self,
        index: int,
        text: str,
        finish_reason: str | None,
        tokens: list[TokenChoice] | None = None,
    ) -> dict:
        """One whole choice: the assistant message."""
        return {
            "index": index,
            "message": {"role": "assistant", "content": text},
            "logprobs": None if tokens is None else self.logprobs(tokens),
            "finish_reason": finish_reason,
        }

    def delta_choice(
        self,
        index: int,
        delta: dict[str, str],
        finish_reason: str | None,
        tokens: list[TokenChoice] | None = None,
    ) -> dict:
        """One choice of a stream chunk."""
        return {
            "index": index,
            "delta": delta,
            "logprobs": None if tokens is None else self.logprobs(tokens),
            "finish_reason": finish_reason,
        }
