"""Every package's ``__all__`` resolves: each listed name can be imported from it.

Lazy exports (``forgather._lazy``) look names up only on use, so a renamed or
deleted definition would otherwise surface as an AttributeError in a user's
config; this walks every package under ``forgather`` and resolves each name.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import forgather


def _packages() -> list[str]:
    names = ["forgather"]
    for info in pkgutil.walk_packages(forgather.__path__, prefix="forgather."):
        if info.ispkg:
            names.append(info.name)
    return names


@pytest.mark.parametrize("package", _packages())
def test_every_exported_name_resolves(package):
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", [])
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ lists names it cannot provide: {missing}"
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    assert set(exported) <= set(dir(module))
