"""On-disk cache for trained tokenizers and tokenized corpora, keyed by their inputs.

An entry is a directory ``<root>/<namespace>/<key>/`` where ``key`` hashes every
input that decides its content (file paths, sizes and mtimes; tokenizer
fingerprint; parameters). An entry is written into a temporary directory and
renamed into place, so a reader never sees half an entry.

Decision a reader may question: the key trusts file sizes and modification times
instead of hashing file contents. Hashing 30 MB of text on every run would cost
about as much as the tokenization we are trying to skip; a file edited without a
size or mtime change is the same trade-off ``make`` accepts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

try:  # POSIX only; elsewhere concurrent writers race and the loser's rename is dropped
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

# Bump when the layout of a cache entry changes, so old entries are not misread.
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$FORGATHER_CACHE_DIR`` if set, else the user cache dir (``~/.cache/forgather/data``)."""
    if env := os.environ.get("FORGATHER_CACHE_DIR"):
        return Path(env).expanduser()
    from forgather.cache_root import user_cache_root

    return Path(user_cache_root()) / "data"


def cache_key(*parts: object) -> str:
    """A short stable hash of JSON-able parts (dict key order does not matter)."""
    text = json.dumps([CACHE_FORMAT, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass
class CacheEntry:
    """A cache directory being looked up or filled.

    Attributes:
        path: where the finished entry lives.
        ready: the entry existed when it was opened (nothing to compute).
    """

    path: Path
    ready: bool
    _tmp: Path | None = field(default=None, repr=False)

    @property
    def tmp_path(self) -> Path:
        """A fresh directory to write the entry into before :meth:`commit`."""
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        return self._tmp

    def commit(self) -> None:
        """Move the written entry into place."""
        if self._tmp is None:
            raise RuntimeError("nothing was written to the cache entry")
        try:
            os.replace(self._tmp, self.path)
        except OSError:
            # Another process (no flock available) finished the same entry first.
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = None
        self.ready = True


@contextlib.contextmanager
def cache_entry(
    namespace: str, key: str, cache_dir: str | os.PathLike | None = None
) -> Iterator[CacheEntry]:
    """Open the entry ``namespace/key``, holding an exclusive lock while inside.

    Concurrent processes (the ranks of a distributed job) asking for the same entry
    wait for the first to finish it, then find it ready. An exception inside the
    block removes the partial entry.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    parent = root / namespace
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / key
    with open(parent / f"{key}.lock", "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        entry = CacheEntry(path=path, ready=path.is_dir())
        try:
            yield entry
        finally:
            if entry._tmp is not None:
                shutil.rmtree(entry._tmp, ignore_errors=True)
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)
