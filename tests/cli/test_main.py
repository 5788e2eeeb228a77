"""``forgather.cli.main`` is the one place the CLI reads the process's command line.

Commands get their own parsed arguments; only ``main()`` called without
arguments (the ``forgather`` script, ``python -m forgather``) reads
``sys.argv``, and so do the ``__main__`` blocks of the two modules that are
programs of their own (``python -m forgather.cli.inference``,
``python -m forgather.cli.loopback_torchrun``). An argparse ``parse_args()``
without arguments reads ``sys.argv`` as well, so it counts.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import forgather.cli

from .conftest import run_cli

CLI_DIR = Path(forgather.cli.__file__).parent


def _argv_reads(path: Path) -> list[str]:
    """``file:line`` of every read of ``sys.argv`` outside ``main.main`` and ``__main__`` blocks."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed: set[int] = set()
    for node in tree.body:
        is_main_block = isinstance(node, ast.If) and "__main__" in ast.unparse(node.test)
        is_entry_point = (
            path.name == "main.py" and isinstance(node, ast.FunctionDef) and node.name == "main"
        )
        if is_main_block or is_entry_point:
            allowed.update(id(n) for n in ast.walk(node))
    reads = []
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        argv = (
            isinstance(node, ast.Attribute)
            and node.attr == "argv"
            and ast.unparse(node.value) == "sys"
        )
        implicit = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("parse_args", "parse_known_args")
            and not node.args
            and not node.keywords
        )
        if argv or implicit:
            reads.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return reads


def test_only_the_entry_point_reads_sys_argv():
    reads = [read for path in sorted(CLI_DIR.glob("*.py")) for read in _argv_reads(path)]
    assert reads == []


def test_the_check_sees_a_read(tmp_path):
    module = tmp_path / "command.py"
    module.write_text(
        "import sys\ndef run(parser):\n    return parser.parse_args(), sys.argv[1:]\n"
    )
    assert _argv_reads(module) == [
        "command.py:3: parser.parse_args()",
        "command.py:3: sys.argv",
    ]


def test_python_dash_m_inference_is_forgather_inf():
    env = {**os.environ, "COLUMNS": "100"}  # as run_cli: the same help layout
    for args in (["--help"], ["server"]):  # help (0); no model: -m or a config file names it (1)
        alone = subprocess.run(
            [sys.executable, "-m", "forgather.cli.inference", *args],
            capture_output=True, text=True, env=env, timeout=60,
        )  # fmt: skip
        command = run_cli("inf", *args)
        assert (alone.returncode, alone.stdout, alone.stderr) == (
            command.rc,
            command.out,
            command.err,
        )
    assert command.rc == 1 and "-m/--model" in command.err
