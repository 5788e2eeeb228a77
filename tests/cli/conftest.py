"""Helpers for CLI tests: run ``forgather`` in a subprocess, compare with golden files.

Golden files live in ``tests/cli/golden/``; ``FORGATHER_UPDATE_GOLDEN=1``
rewrites them from the current output. The repository root is replaced by
``<ROOT>`` so the files hold for any clone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
TUTORIAL = EXAMPLES / "tutorials" / "project_composition"
TEMPLATE_PROJECT = EXAMPLES / "template_project"
GOLDEN_DIR = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Keep caches and the job registry of the tests out of the user's directories."""
    old = {k: os.environ.get(k) for k in ("FORGATHER_CACHE_DIR", "FORGATHER_STATE_DIR")}
    os.environ["FORGATHER_CACHE_DIR"] = str(tmp_path_factory.mktemp("forgather_cache"))
    os.environ["FORGATHER_STATE_DIR"] = str(
        tmp_path_factory.mktemp("forgather_state")
    )  # job registry
    yield
    for key, value in old.items():
        if value is None:
            del os.environ[key]
        else:
            os.environ[key] = value


@dataclass
class Result:
    rc: int
    out: str
    err: str


def run_cli(*args: str, cwd: str | os.PathLike | None = None, stdin: str | None = None,
            env: dict[str, str] | None = None) -> Result:  # fmt: skip
    """Run ``python -m forgather.cli ARGS`` (with ``env`` added to the environment)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "100", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "forgather.cli", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def normalize(text: str) -> str:
    return text.replace(str(REPO_ROOT), "<ROOT>")


def assert_golden(name: str, text: str) -> None:
    """Compare ``text`` with ``golden/<name>`` (rewrite it with FORGATHER_UPDATE_GOLDEN=1)."""
    path = GOLDEN_DIR / name
    text = normalize(text)
    if os.environ.get("FORGATHER_UPDATE_GOLDEN") == "1":
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"no golden file {path}; run with FORGATHER_UPDATE_GOLDEN=1 to create it")
    assert text == path.read_text(), f"output differs from {path}"
