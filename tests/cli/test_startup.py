"""Fast paths stay light: --help, ls and pp import neither torch nor transformers."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import TUTORIAL

PROBE = """
import contextlib, io, sys
from forgather.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    rc = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "transformers", "numpy") if m in sys.modules)
print(rc, heavy)
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["-p", str(TUTORIAL), "ls"],
        ["-p", str(TUTORIAL), "-t", "4_dynamic_args.yaml", "pp"],
        ["-p", str(TUTORIAL), "targets"],
    ],
    ids=["help", "ls", "pp", "targets"],
)
def test_no_heavy_imports(args):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[-2] == "0 []"


def test_help_imports_no_command_module():
    code = (
        "import sys, contextlib, io\n"
        "from forgather.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()): main(['--help'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('forgather.', 'jinja2', 'yaml'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # The registry is the command table --help lists (and the options it shows);
    # no command module, no dispatcher, no config language.
    assert out.stdout.strip() == (
        "['forgather._lazy', 'forgather.cli', 'forgather.cli.main', 'forgather.cli.registry']"
    )


def test_python_dash_m_forgather_is_the_command_and_stays_light():
    # -X importtime lists every module the interpreter imports, on stderr.
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "forgather", "--help"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: forgather ")
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if "|" in line}
    assert "forgather.cli.main" in imported
    assert not {m.split(".")[0] for m in imported} & {"torch", "transformers", "numpy"}
