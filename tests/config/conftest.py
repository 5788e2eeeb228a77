"""Fixtures for config tests: a temporary search path with templates written inline."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from forgather.config import ConfigEnvironment


class TemplateDir:
    """A directory of templates; ``write`` dedents so tests can indent template text."""

    def __init__(self, root: Path):
        self.root = root

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def env(self, **global_vars) -> ConfigEnvironment:
        return ConfigEnvironment([self.root], global_vars)


@pytest.fixture
def templates(tmp_path) -> TemplateDir:
    return TemplateDir(tmp_path / "templates")


def _load(text: str, **template_vars):
    return ConfigEnvironment([]).load_from_string(
        textwrap.dedent(text).lstrip("\n"), **template_vars
    )


@pytest.fixture
def load():
    """Load a config from dedented text: ``load(text, **template_vars)``."""
    return _load
