"""Lazy package exports (PEP 562): one helper for every ``__init__.py`` that uses them.

    # forgather/serve/__init__.py
    __getattr__, __dir__ = lazy_exports(__name__, {"ServerSettings": "server", ...})

A package lists each public name with the submodule that defines it; the
submodule is imported the first time the name is looked up, and the value is
cached in the package's globals so later lookups skip ``__getattr__``.

Decision a reader may question: lazy exports are used where the import itself
costs the user time. ``import forgather`` runs before every command, and
``--help``/``ls``/``pp`` must not load Jinja2, torch or transformers for names
they never touch; tokenization workers import ``forgather.ml.data`` and would
otherwise load transformers in every worker. This module imports nothing
beyond ``importlib`` on first use, so it adds nothing to startup.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a few ms)
if TYPE_CHECKING:
    from collections.abc import Callable


def lazy_exports(
    package: str, where: dict[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` resolving ``where``'s names on first use.

    Args:
        package: The package's ``__name__``.
        where: Public name -> submodule defining it, relative to ``package``
            (``"server"``) or absolute (``"forgather.config"``).

    Returns:
        ``(__getattr__, __dir__)`` to assign at the package's top level.
    """

    def __getattr__(name: str) -> object:
        module_name = where.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import importlib
        import sys

        if not module_name.startswith("forgather"):
            module_name = f"{package}.{module_name}"
        value = getattr(importlib.import_module(module_name), name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        import sys

        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
