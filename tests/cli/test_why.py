"""``forgather why`` and ``pp --annotate``; ``why`` works on every example config."""

from __future__ import annotations

import subprocess
import sys

import pytest

from forgather.config.nodes import Node
from forgather.config.traverse import walk
from forgather.project import Project, find_projects

from .conftest import EXAMPLES, TUTORIAL, run_cli

PROJECTS = sorted(find_projects(EXAMPLES))

# Runs `why` and `pp --annotate` in one process, then says whether torch & co. came in.
PROBE = """
import contextlib, io, sys
from forgather.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rcs = [main([*sys.argv[1:], *args]) for args in (
        ["why", "main.shopping.milk", "main.repeated.0", "--repeat", "2"],
        ["pp", "--annotate"],
    )]
heavy = sorted(m for m in ("torch", "transformers", "numpy") if m in sys.modules)
print(out.getvalue())
print(rcs, heavy)
"""


def test_why_and_annotate_on_the_tutorial_import_nothing_heavy():
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "-t", "4_dynamic_args.yaml"],
        cwd=TUTORIAL,
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    assert out.rstrip().split("\n")[-1] == "[0, 0] []"
    why, annotated = out.split("\n\n\n", 1)[0], out
    assert why.startswith("main.shopping.milk = 'a bottle of milk'\n")
    assert "  set at templates/project.yaml:16 (rendered line" in why
    assert "in template extended by templates/configs/4_dynamic_args.yaml:5" in why
    assert "main.repeated.0 = 'Hello'" in why
    assert "templates/configs/4_dynamic_args.yaml:26" in why and "calls super()" in why
    assert (
        "templates/project.yaml:16" in annotated
        and '|         milk: "a bottle of milk"' in annotated
    )


def test_why_after_set_and_a_path_that_names_nothing():
    result = run_cli(
        "-t", "4_dynamic_args.yaml", "--set", "main.greeting=Hey", "why", "main.greeting",
        cwd=TUTORIAL,
    )  # fmt: skip
    assert result.rc == 0, result.err
    assert result.out.startswith("main.greeting = 'Hey'\n  set on the command line (--set)\n")
    assert "overrides templates/project.yaml:12:" in result.out
    missing = run_cli("-t", "4_dynamic_args.yaml", "why", "main.nope", cwd=TUTORIAL)
    assert missing.rc == 1 and "main.nope: no such key or index 'nope'" in missing.err


def _one_path(graph) -> str:
    """A plain value as deep as the config has one (else its first target)."""
    leaves = [v for v in walk(graph) if not isinstance(v.value, Node) and len(v.path) > 1]
    if not leaves:
        return next(iter(graph))
    return max(leaves, key=lambda v: len(v.path)).dotted


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_why_works_on_every_example_config(project):
    opened = Project.open(project)
    names = opened.config_names()
    assert names
    for name in names:
        cfg = opened.load(name)
        path = _one_path(cfg.graph)
        found = cfg.why(path)
        assert found.location is not None, (name, path)
        step = path.rsplit(".", 1)[-1]
        line = found.location.excerpt()
        assert step.isdigit() or step in line or "{{" in line, (name, path, line)
        assert str(found).startswith(f"{path} = ")
