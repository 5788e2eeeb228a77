"""The cache directory found without platformdirs is platformdirs' own."""

from __future__ import annotations

import sys

import platformdirs
import pytest

from forgather.cache_root import cache_root, user_cache_root


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="computed here on Linux only")
@pytest.mark.parametrize("xdg", [None, "/tmp/xdg-cache", "relative/cache", "", "   "])
def test_user_cache_root_is_platformdirs_user_cache_dir(monkeypatch, xdg):
    monkeypatch.delenv("FORGATHER_CACHE_DIR", raising=False)
    if xdg is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg)
    assert user_cache_root() == platformdirs.user_cache_dir("forgather")
    assert cache_root() == user_cache_root()


def test_forgather_cache_dir_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("FORGATHER_CACHE_DIR", str(tmp_path))
    assert cache_root() == str(tmp_path)
    monkeypatch.setenv("FORGATHER_CACHE_DIR", "~/somewhere")
    assert not cache_root().startswith("~")
