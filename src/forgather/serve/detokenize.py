"""Token ids -> text, one token at a time, with stop strings cut exactly.

:class:`IncrementalDetokenizer` turns each new token into the text it adds;
:class:`StopStringFilter` holds back text that could still become a stop
string, so a streaming client never sees part of one.

Decision a reader may question: the detokenizer decodes a short window of
tokens (a few already-returned ones plus the new ones) and returns the
difference, instead of decoding the whole output each step (quadratic) or
each token alone (wrong: byte-level tokens can split a UTF-8 character, and
SentencePiece-style decoders drop the leading space of the first token they
see). Text ending in U+FFFD is an incomplete character and waits for the next
token; whatever is still held back is returned when the sequence ends.
"""

from __future__ import annotations

from typing import Any

_INCOMPLETE = "\ufffd"


class IncrementalDetokenizer:
    """The text each new token adds, equal in sum to ``tokenizer.decode(all_ids)``.

    Args:
        tokenizer: A Hugging Face tokenizer.
        skip_special_tokens: Leave special tokens (EOS, padding) out of the text.
    """

    def __init__(self, tokenizer: Any, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._ids: list[int] = []
        self._prefix_offset = 0  # window start: context tokens already returned as text
        self._read_offset = 0  # tokens before this have been returned as text
        self._backend = _plain_backend(tokenizer)

    def _decode(self, ids: list[int]) -> str:
        if self._backend is not None:
            return self._backend.decode(ids, skip_special_tokens=self._skip)
        return self._tokenizer.decode(ids, skip_special_tokens=self._skip)

    def push(self, token_id: int) -> str:
        """Add one token; return the new text (empty while a character is incomplete)."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full_text = self._decode(self._ids[self._prefix_offset :])
        if len(full_text) <= len(prefix_text) or full_text.endswith(_INCOMPLETE):
            return ""
        self._prefix_offset = self._read_offset
        self._read_offset = len(self._ids)
        return full_text[len(prefix_text) :]

    def flush(self) -> str:
        """Text of tokens still held back (an incomplete character at the end)."""
        if self._read_offset == len(self._ids):
            return ""
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        full_text = self._decode(self._ids[self._prefix_offset :])
        self._prefix_offset = self._read_offset = len(self._ids)
        return full_text[len(prefix_text) :]


def _plain_backend(tokenizer: Any) -> Any:
    """The Rust tokenizer behind a fast tokenizer whose ``decode`` adds nothing to it, else None.

    Called twice per generated token, the Python wrapper of ``decode`` costs more than
    the decoding; when the class does not override decoding and no clean-up of
    spaces is configured, the backend gives the same text.
    """
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError:  # pragma: no cover - transformers is a dependency of serving
        return None
    cls = type(tokenizer)
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        return None
    if (
        cls.decode is not PreTrainedTokenizerFast.decode
        or cls._decode is not PreTrainedTokenizerFast._decode
    ):
        return None
    if getattr(tokenizer, "clean_up_tokenization_spaces", True):
        return None
    return getattr(tokenizer, "_tokenizer", None)


class StopStringFilter:
    """Passes text through until a stop string appears; never releases part of one.

    The text ends where the first stop string to complete begins.

    >>> f = StopStringFilter(["\\n\\n"])
    >>> f.push("a\\n"), f.push("\\nb"), f.stopped
    ('a', '', True)

    Args:
        stop: The stop strings (empty strings are ignored).
    """

    def __init__(self, stop: tuple[str, ...] | list[str]) -> None:
        self._stop = [s for s in stop if s]
        self._pending = ""  # text received but not yet released
        self.stopped = False

    def push(self, text: str) -> str:
        """Add text; return what can be released. After a stop string, nothing more."""
        if self.stopped:
            return ""
        if not self._stop:
            return text
        pending = self._pending + text
        # A match can only start inside `pending`: released text never ends in a stop prefix.
        # Generation stops at the match that completes first (then the longest of those),
        # so the cut does not depend on how the text was split into tokens.
        matches = [(i + len(s), i) for s, i in ((s, pending.find(s)) for s in self._stop) if i >= 0]
        if matches:
            self.stopped = True
            self._pending = ""
            return pending[: min(matches)[1]]
        keep = self._longest_stop_prefix_suffix(pending)
        self._pending = pending[len(pending) - keep :]
        return pending[: len(pending) - keep]

    def flush(self) -> str:
        """Release what is held back (the sequence ended without a stop string)."""
        text, self._pending = ("" if self.stopped else self._pending), ""
        return text

    def _longest_stop_prefix_suffix(self, text: str) -> int:
        """Length of the longest suffix of ``text`` that starts some stop string."""
        longest = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
