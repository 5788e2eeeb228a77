"""Incremental detokenizing equals decoding everything at once, and stop strings are
cut exactly with no part of one ever released (property-tested)."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from forgather.serve.detokenize import IncrementalDetokenizer, StopStringFilter


def test_incremental_text_equals_full_decode_including_split_characters(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    text = "naïve café — ünïcödé ✓ 日本語 emoji 🙂 and plain code: def f(x): return x\n"
    ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    detokenizer = IncrementalDetokenizer(tokenizer)
    pieces = [detokenizer.push(token) for token in ids]
    assert all("\ufffd" not in piece for piece in pieces)  # no half characters released
    assert "".join(pieces) + detokenizer.flush() == text


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.integers(min_value=0, max_value=511), max_size=40))
def test_any_token_sequence_decodes_the_same(model_and_tokenizer, ids):
    _, tokenizer = model_and_tokenizer
    detokenizer = IncrementalDetokenizer(tokenizer)
    streamed = "".join(detokenizer.push(token) for token in ids) + detokenizer.flush()
    assert streamed == tokenizer.decode(ids, skip_special_tokens=True)


def _expected(text: str, stops: list[str]) -> str:
    """``text`` cut where the first stop string to complete (then the longest) begins."""
    found = [(text.find(s) + len(s), text.find(s)) for s in stops if s and s in text]
    return text[: min(found)[1]] if found else text


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(alphabet="ab\n", max_size=30),
    stops=st.lists(st.text(alphabet="ab\n", min_size=1, max_size=4), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=30), max_size=8),
)
def test_stop_filter_cuts_at_the_first_stop_and_never_leaks(text, stops, cuts):
    bounds = sorted({0, len(text), *(c for c in cuts if c <= len(text))})
    chunks = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    expected = _expected(text, stops)
    stop_filter = StopStringFilter(stops)
    released = ""
    for chunk in chunks:
        released += stop_filter.push(chunk)
        assert expected.startswith(released)  # nothing past the cut, ever
    released += stop_filter.flush()
    assert released == expected
    assert stop_filter.stopped == (expected != text or any(s in text for s in stops))


def test_plain_fast_tokenizers_decode_through_their_backend(model_and_tokenizer):
    """The fast path the tests above compare with ``tokenizer.decode`` is the one taken;
    a tokenizer that cleans up spaces keeps the Python ``decode``."""
    from forgather.serve.detokenize import _plain_backend

    _, tokenizer = model_and_tokenizer
    assert _plain_backend(tokenizer) is tokenizer._tokenizer
    cleaning = copy.deepcopy(tokenizer)
    cleaning.clean_up_tokenization_spaces = True
    assert _plain_backend(cleaning) is None
    detokenizer = IncrementalDetokenizer(cleaning)
    text = "a , b ."
    ids = cleaning(text)["input_ids"]
    streamed = "".join(detokenizer.push(token) for token in ids) + detokenizer.flush()
    assert streamed == cleaning.decode(ids, skip_special_tokens=True)
