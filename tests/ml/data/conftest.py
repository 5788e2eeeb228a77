"""Fixtures for the data tests: small real text from the stdlib corpus, a small real
tokenizer trained on it, and a private cache directory per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forgather.ml.data.stdlib_corpus import python_stdlib_source
from forgather.ml.data.tokenizer import train_tokenizer

# A few stdlib packages: ~40 files, ~0.6 MB, enough variety for BPE and splits.
SMALL_PACKAGES = ["json", "email", "textwrap.py", "string.py", "bisect.py"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets an empty data cache (never the user's)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("FORGATHER_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def small_source():
    return python_stdlib_source(packages=SMALL_PACKAGES)


@pytest.fixture(scope="session")
def small_tokenizer(small_source):
    """A 512-token byte-level BPE trained on the small stdlib subset."""
    return train_tokenizer((d.text for d in small_source.documents()), vocab_size=512)
