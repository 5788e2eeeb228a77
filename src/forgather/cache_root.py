"""Where Forgather keeps its caches: ``$FORGATHER_CACHE_DIR``, else the user cache directory.

The user cache directory is platformdirs' ``user_cache_dir("forgather")``
(``~/.cache/forgather``, or ``$XDG_CACHE_HOME/forgather`` when that is an
absolute path). On Linux it is computed here without importing platformdirs,
which costs a cached ``forgather pp`` a fifth of its time; elsewhere
platformdirs answers.
"""

from __future__ import annotations

import os
import sys


def user_cache_root() -> str:
    """platformdirs' ``user_cache_dir("forgather")``."""
    if sys.platform.startswith("linux"):
        xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
        base = xdg if os.path.isabs(xdg) else os.path.expanduser("~/.cache")
        return os.path.join(base, "forgather")
    from platformdirs import user_cache_dir

    return user_cache_dir("forgather")


def cache_root() -> str:
    """``$FORGATHER_CACHE_DIR`` (``~`` expanded) if set, else :func:`user_cache_root`."""
    env = os.environ.get("FORGATHER_CACHE_DIR")
    return os.path.expanduser(env) if env else user_cache_root()
