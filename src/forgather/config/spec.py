"""SPECs: what a call node calls, and how to import it (lazily, at build time).

Forms (LANGUAGE.md, section 3):

* ``name`` — a helper (``getattr``, ``getitem``, ``call``, ``items``, ``keys``,
  ``values``), a builtin, or a dotted path ``pkg.mod.Name``;
* ``module:Name.attr`` — import ``module``, walk the attributes;
* ``/path/to/file.py:Name`` — import a source file;
* ``.module:Name`` — a module of the current submodule search path.

Whether a SPEC may be imported at all is decided before :func:`resolve` is
called (``policy.py``); :func:`resolve` takes a ``check`` that sees every
module and attribute the walk reaches, and the ``getattr`` helper a config
gets is :func:`checked_getattr`.

Decision a reader may question: source files and relative modules are imported
as submodules of a synthetic package whose ``__path__`` is the search path
(plus the file's own directory), so ``from .attention import X`` inside a
component file works exactly as it will in a generated model directory.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import os
import re
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import RefusedImportError


def _getitem(obj, key):
    return obj[key]


def _call(fn, *args, **kwargs):
    return fn(*args, **kwargs)


def _items(obj):
    return list(obj.items())


def _keys(obj):
    return list(obj.keys())


def _values(obj):
    return list(obj.values())


HELPERS: dict[str, Any] = {
    "getattr": getattr,
    "getitem": _getitem,
    "call": _call,
    "items": _items,
    "keys": _keys,
    "values": _values,
}

_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class Spec:
    """A parsed SPEC.

    ``form`` is one of "name" (helper, builtin or dotted path), "module",
    "file" (a ``.py`` path) or "relative" (``.module``).
    """

    text: str
    form: str
    module: str  # module, file path or relative module; "" for form "name"
    attr: str  # attribute path (dotted) or the bare name

    @property
    def is_builtin(self) -> bool:
        """A helper, a builtin, or an attribute of a builtin (``dict.fromkeys``)."""
        first = self.attr.split(".")[0]
        return self.form == "name" and (self.attr in HELPERS or hasattr(builtins, first))


def parse_spec(text: str) -> Spec:
    """Parse a SPEC string; raise ``ValueError`` with the reason when malformed."""
    if not text:
        raise ValueError("empty SPEC")
    if ":" not in text:
        if not _DOTTED.match(text):
            raise ValueError(
                f"malformed SPEC {text!r}: expected a name, module:Name or file.py:Name"
            )
        return Spec(text, "name", "", text)
    module, attr = text.rsplit(":", 1)
    if not _DOTTED.match(attr):
        raise ValueError(f"malformed SPEC {text!r}: {attr!r} is not a (dotted) Python name")
    if module.endswith(".py"):
        return Spec(text, "file", module, attr)
    if module.startswith(".") and _DOTTED.match(module[1:]):
        return Spec(text, "relative", module[1:], attr)
    if _DOTTED.match(module):
        return Spec(text, "module", module, attr)
    raise ValueError(f"malformed SPEC {text!r}: {module!r} is not a module name or a .py file")


#: ``check(obj, reached_as)``: why an object reached while resolving may not be used, or None.
Check = Callable[[Any, str], "str | None"]


def _checked(check: Check | None, obj: Any, reached_as: str) -> Any:
    if check is not None:
        reason = check(obj, reached_as)
        if reason:
            raise RefusedImportError(reason)
    return obj


def _walk(obj: Any, attr: str, where: str, check: Check | None = None) -> Any:
    reached = where
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{where} has no attribute {part!r}") from None
        reached = f"{reached}.{part}"
        _checked(check, obj, reached)
    return obj


def checked_getattr(check: Check) -> Callable[..., Any]:
    """The ``getattr`` helper as configs get it: no private names, nothing ``check`` refuses."""

    def getattr(obj, name, *default):  # the name a config writes, and messages show
        if not isinstance(name, str) or name.startswith("_"):
            raise RefusedImportError(f"getattr of {name!r}: private attributes are not allowed")
        return _checked(check, builtins.getattr(obj, name, *default), f"getattr(..., {name!r})")

    return getattr


def synthetic_package(paths: list[str]) -> str:
    """A package whose submodules are the .py files of ``paths``; returns its name."""
    paths = [os.path.abspath(p) for p in paths]
    digest = hashlib.sha1("\0".join(paths).encode()).hexdigest()[:12]
    name = f"_forgather_src_{digest}"
    if name not in sys.modules:
        package = types.ModuleType(name, "Submodule search path of a Forgather config")
        package.__path__ = paths
        package.__package__ = name
        sys.modules[name] = package
    return name


def import_dotted(path: str, check: Check | None = None) -> Any:
    """Import ``a.b.c.Name``: the longest importable module prefix, then attributes."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and not module_name.startswith(e.name) and e.name != module_name:
                raise  # the module exists but one of its own imports is missing
            continue
        _checked(check, module, module_name)
        if split < len(parts):
            return _walk(module, ".".join(parts[split:]), module_name, check)
        return module
    raise ImportError(f"no module named {parts[0]!r}")


def module_split(path: str) -> tuple[str, str]:
    """For a dotted path, (module part, attribute part) as imported by :func:`import_dotted`."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        return module_name, ".".join(parts[split:])
    raise ImportError(f"no module named {parts[0]!r}")


def resolve(spec: Spec, searchpath: list[str] | None = None, check: Check | None = None) -> Any:
    """Import what ``spec`` names.

    Args:
        spec: a parsed SPEC.
        searchpath: the submodule search path in effect (for "file" and
            "relative" forms).
        check: called with every module and attribute reached; a reason it
            returns refuses the SPEC (:class:`~forgather.config.policy.ImportPolicy`).

    Raises:
        ImportError: with a message saying what could not be found.
        RefusedImportError: ``check`` refused something reached.
    """
    if spec.form == "name":
        if spec.attr in HELPERS:
            return HELPERS[spec.attr]
        first, _, rest = spec.attr.partition(".")
        if hasattr(builtins, first):
            obj = _checked(check, builtins.getattr(builtins, first), first)
            return _walk(obj, rest, first, check) if rest else obj
        return import_dotted(spec.attr, check)
    if spec.form == "module":  # the module itself was allowed by name (os for os:path.join)
        return _walk(importlib.import_module(spec.module), spec.attr, spec.module, check)
    paths = list(searchpath or [])
    if spec.form == "file":
        if not os.path.isfile(spec.module):
            raise ImportError(f"no such file: {spec.module}")
        paths.insert(0, os.path.dirname(os.path.abspath(spec.module)))
        module = os.path.splitext(os.path.basename(spec.module))[0]
    else:
        if not paths:
            raise ImportError(
                f"relative SPEC {spec.text!r} needs a submodule_searchpath on this call "
                "or an enclosing one"
            )
        module = spec.module
    package = synthetic_package(paths)
    return _walk(importlib.import_module(f"{package}.{module}"), spec.attr, module, check)
