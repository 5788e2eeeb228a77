"""Fixtures: a fresh workspace with one project, made by the real scaffolding."""

from __future__ import annotations

from pathlib import Path

import pytest

from forgather.project import create_project, init_workspace

REPO_ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = REPO_ROOT / "examples" / "tutorials" / "project_composition"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    init_workspace(tmp_path, name="Test workspace", description="for tests")
    return tmp_path


@pytest.fixture
def project(workspace: Path) -> Path:
    return create_project(workspace / "proj", name="Proj", description="a test project")
