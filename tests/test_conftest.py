"""``tests/conftest.py``: a leaked socket fails the test that leaked it, and the run
still ends with its summary line (not with a traceback printed after it).

Each case runs pytest in a subprocess on a small test file, next to a copy of
the suite's conftest and the suite's ``filterwarnings = error``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

CONFTEST = Path(__file__).with_name("conftest.py")

LEAKS = """
import socket


class Holder:
    pass


def leak():
    holder = Holder()
    holder.me = holder  # a reference cycle: only the garbage collector frees it
    holder.sock = socket.socket()
    return holder
"""


def _pytest(tmp_path: Path, tests: str) -> tuple[int, list[str]]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n")
    (tmp_path / "test_case.py").write_text(textwrap.dedent(LEAKS) + textwrap.dedent(tests))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rE", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result.returncode, result.stdout.strip().splitlines()


def _summary(lines: list[str]) -> str:
    assert re.fullmatch(r"=+ .+ in [\d.]+s( \(.+\))? =+", lines[-1]), lines[-15:]
    return lines[-1]


def test_a_leak_is_an_error_of_the_test_that_leaked(tmp_path):
    code, lines = _pytest(
        tmp_path,
        """
        def test_leaks():
            leak()

        def test_innocent():
            pass
        """,
    )
    assert code == 1
    assert "2 passed, 1 error" in _summary(lines)
    assert "ERROR test_case.py::test_leaks - pytest.PytestUnraisableExceptionWarning" in "\n".join(
        lines
    )


def test_a_leak_kept_alive_to_the_end_is_reported_before_the_summary(tmp_path):
    code, lines = _pytest(
        tmp_path,
        """
        def test_fails_holding_a_socket():
            holder = leak()  # kept alive by pytest's record of the last failure
            assert holder is None
        """,
    )
    assert code == 1
    assert "1 failed, 1 error" in _summary(lines)
