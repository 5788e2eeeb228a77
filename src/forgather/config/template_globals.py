"""Functions and filters every template can use (LANGUAGE.md, section 2).

Decisions a reader may question:

* ``versions`` reads installed package metadata instead of importing
  torch/transformers, so rendering a config never pays for importing them. It
  lists python, torch, transformers and accelerate, and prints as a dict, as
  the original Forgather's does (``versions: {{ versions }}`` in a logger's
  arguments is YAML); ``versions.forgather`` is there when asked for by name.
* ``utcisotime()`` and ``utcfiletime()`` print no ``+00:00``: the names say
  UTC, and the original Forgather's configs print them bare.
* ``toyaml`` spells booleans ``True``/``False`` and writes printable
  non-ASCII characters as themselves, as the original does (every YAML loader
  reads both spellings the same); mappings keep their insertion order, where
  the original sorted their keys (a mapping's order is not part of its value).
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import socket
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from jinja2 import Undefined


class _Versions(Mapping):
    """``versions.torch`` etc., read from package metadata on first use (never imported)."""

    _PACKAGES = ("python", "torch", "transformers", "accelerate")
    _BY_NAME_ONLY = ("forgather",)

    def __init__(self):
        self._cache: dict[str, str | None] = {}

    def __getitem__(self, name: str) -> str | None:
        if name not in self._PACKAGES and name not in self._BY_NAME_ONLY:
            raise KeyError(name)
        if name not in self._cache:
            self._cache[name] = platform.python_version() if name == "python" else _version(name)
        return self._cache[name]

    def __getattr__(self, name: str) -> str | None:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._PACKAGES)

    def __len__(self) -> int:
        return len(self._PACKAGES)

    def __repr__(self) -> str:
        return repr(dict(self))

    __str__ = __repr__


def _version(package: str) -> str | None:
    from importlib import metadata  # ~15 ms: only when a template asks

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


_VERSIONS = _Versions()


def modname_from_path(path: str) -> str:
    """``/a/b/my_module.py`` -> ``my_module``."""
    return os.path.splitext(os.path.basename(path))[0]


def forgather_config_dir() -> str:
    """The user's Forgather configuration directory (platformdirs)."""
    import platformdirs

    return platformdirs.user_config_dir("forgather")


def _platformdirs(name: str):
    def call(*args, **kwargs):
        import platformdirs

        return getattr(platformdirs, name)(*args, **kwargs)

    call.__name__ = name
    return call


def _flow_yaml(value: Any) -> str:
    text = yaml.safe_dump(
        value, default_flow_style=True, width=math.inf, sort_keys=False, allow_unicode=True
    )
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[:-3].rstrip()
    return text


_REQUIRED = object()


def toyaml(value: Any, default: Any = _REQUIRED) -> str:
    """Render a Python value as inline YAML (``None`` -> ``null``, flow style).

    An undefined value is an error unless a default is given.
    """
    if isinstance(value, Undefined):
        if default is _REQUIRED:
            value._fail_with_undefined_error()
        value = default
    if isinstance(value, bool):
        return str(value)
    return _flow_yaml(value)


def template_globals() -> dict[str, Any]:
    """The globals of LANGUAGE.md, fresh for each environment."""
    now = datetime.datetime.now
    utcnow = lambda: datetime.datetime.now(datetime.timezone.utc)  # noqa: E731
    return {
        "isotime": lambda: now().isoformat(timespec="seconds"),
        "utcisotime": lambda: utcnow().replace(tzinfo=None).isoformat(timespec="seconds"),
        "filetime": lambda: now().strftime("%Y-%m-%dT%H-%M-%S"),
        "utcfiletime": lambda: utcnow().strftime("%Y-%m-%dT%H-%M-%S"),
        "now": now,
        "utcnow": utcnow,
        "joinpath": os.path.join,
        "normpath": os.path.normpath,
        "abspath": os.path.abspath,
        "relpath": os.path.relpath,
        "repr": repr,
        "dirname": os.path.dirname,
        "basename": os.path.basename,
        "splitext": os.path.splitext,
        "modname_from_path": modname_from_path,
        "user_home_dir": lambda: os.path.expanduser("~"),
        "getcwd": os.getcwd,
        "hostname": socket.gethostname(),
        "uname": platform.uname(),
        "versions": _VERSIONS,
        "python_executable": sys.executable,
        "forgather_config_dir": forgather_config_dir,
        "user_data_dir": _platformdirs("user_data_dir"),
        "user_cache_dir": _platformdirs("user_cache_dir"),
        "user_config_dir": _platformdirs("user_config_dir"),
        "site_data_dir": _platformdirs("site_data_dir"),
        "site_config_dir": _platformdirs("site_config_dir"),
    }
