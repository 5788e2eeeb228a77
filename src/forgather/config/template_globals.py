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
import functools
import math
import os
import platform
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import yaml
from jinja2 import Undefined

_volatile_reads = 0


def volatile_reads() -> int:
    """How many times renders in this process read something their files do not fix
    (a clock, ``versions``, Jinja's ``random`` and ``lipsum``). The ``ls`` and ``pp``
    caches store no output made while this count moved."""
    return _volatile_reads


def volatile(fn):
    """``fn``, counted by :func:`volatile_reads` at each call (Jinja's pass_* marks kept)."""

    @functools.wraps(fn)
    def read(*args, **kwargs):
        global _volatile_reads
        _volatile_reads += 1
        return fn(*args, **kwargs)

    return read


class _Versions(Mapping):
    """``versions.torch`` etc., read from package metadata on first use (never imported)."""

    _PACKAGES = ("python", "torch", "transformers", "accelerate")
    _BY_NAME_ONLY = ("forgather",)

    def __init__(self):
        self._cache: dict[str, str | None] = {}

    @volatile  # installed versions change without any template changing
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


#: Flow YAML of values seen before, by :func:`_value_key` (``ls -r`` renders the
#: same names, paths and ``None`` hundreds of times; PyYAML's emitter is slow).
_FLOW_CACHE: dict[Any, str] = {}
_FLOW_CACHE_SIZE = 4096
_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})


def _value_key(value: Any, containers: set[int]) -> Any:
    """A hashable key that only a value with the same YAML has, or None.

    Leaves are keyed by exact type (``True`` is not ``1``; a str subclass is
    not cached) and floats by ``repr`` (``-0.0`` is not ``0.0``). Lists and
    dicts are keyed by their items in order; one that appears twice (which
    PyYAML writes as an anchor and an alias) or any other type gives None.
    """
    kind = type(value)
    if kind in _LEAF_TYPES:
        return (kind, repr(value) if kind is float else value)
    if kind is list or kind is dict:
        if id(value) in containers:
            return None
        containers.add(id(value))
        pairs = value.items() if kind is dict else enumerate(value)
        items = []
        for k, v in pairs:
            key = (_value_key(k, containers), _value_key(v, containers))
            if None in key:
                return None
            items.append(key if kind is dict else key[1])
        return (kind, tuple(items))
    return None


def _flow_yaml(value: Any) -> str:
    key = _value_key(value, set())
    if key is not None:
        text = _FLOW_CACHE.get(key)
        if text is None:
            text = _dump_flow_yaml(value)
            if len(_FLOW_CACHE) < _FLOW_CACHE_SIZE:
                _FLOW_CACHE[key] = text
        return text
    return _dump_flow_yaml(value)


def _dump_flow_yaml(value: Any) -> str:
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


def _hostname() -> str:
    """The host's name: ``uname``'s node name, which is what ``gethostname`` reads on
    POSIX (importing ``socket`` for it would cost every command ~2 ms)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


class TemplateFailure(Exception):
    """Raised by a template's ``fail(message)``: the config refuses what it was given."""


def fail(message: str) -> None:
    """Stop rendering with ``message``; reported at the template line that called it.

    Lets a template check its variables (``-D trainer=acel``) and say what it
    accepts, instead of failing later with Jinja's words for the symptom.
    """
    raise TemplateFailure(message)


def template_globals() -> dict[str, Any]:
    """The globals of LANGUAGE.md, fresh for each environment."""
    now = volatile(datetime.datetime.now)
    utcnow = volatile(lambda: datetime.datetime.now(datetime.timezone.utc))
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
        "fail": fail,
        "dirname": os.path.dirname,
        "basename": os.path.basename,
        "splitext": os.path.splitext,
        "modname_from_path": modname_from_path,
        "user_home_dir": lambda: os.path.expanduser("~"),
        "getcwd": os.getcwd,
        "hostname": _hostname(),
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
