"""``pp`` replays its stored text while nothing it was made from changes, and only then.

Each run is a fresh process that says on stderr whether it imported Jinja2
(rendered) or not (replayed the stored text). A file changed less than
the settle time (``FORGATHER_PP_SETTLE_SECONDS``, shortened here) before a run leaves
that run's text unstored, so the tests wait that long after writing files before a
run whose text must be kept.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import run_cli

SETTLE_S = 0.5 + 0.2  # the settle time the tests set, and a margin
PROBE = (
    "import sys\n"
    "from forgather.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stderr.write('RENDERED' if 'jinja2' in sys.modules else 'REPLAYED')\n"
    "sys.exit(code)\n"
)


def pp(project: Path, *args: str, cwd: Path | None = None, env: dict | None = None):
    """Run ``forgather -p PROJECT pp ARGS``; its stdout and whether it rendered."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "-p", str(project), "pp", *args],
        cwd=cwd or project, capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.endswith(("RENDERED", "REPLAYED")), proc.stderr
    return proc.stdout, proc.stderr.endswith("RENDERED")


def settle() -> None:
    time.sleep(SETTLE_S)


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("FORGATHER_CACHE_DIR", str(tmp_path / "cache"))
    # A shorter settle time than the default 2 s (ext4's timestamps are fine-grained).
    monkeypatch.setenv("FORGATHER_PP_SETTLE_SECONDS", "0.5")
    run_cli("ws", "init", "--name", "W", cwd=tmp_path)
    run_cli("ws", "project", "--name", "P", cwd=tmp_path)
    return tmp_path / "p"


def config_file(project: Path) -> Path:
    return project / "templates" / "configs" / "default.yaml"


def test_the_second_pp_replays_the_first_and_an_edit_renders_again(project: Path):
    settle()
    first, rendered = pp(project)
    assert rendered
    again, rendered = pp(project)
    assert (again, rendered) == (first, False)
    assert again == pp(project, "--no-cache")[0]

    config = config_file(project)
    config.write_text(config.read_text() + "\nextra: 1\n")
    edited, rendered = pp(project)
    assert rendered and "extra: 1" in edited
    settle()
    assert pp(project) == (edited, True)  # stored now: the edit had settled
    assert pp(project) == (edited, False)


def test_no_cache_renders_and_stores_nothing(project: Path):
    settle()
    assert pp(project, "--no-cache")[1]
    assert pp(project, "--no-cache")[1]
    assert pp(project)[1]  # the first run that may store


def test_command_line_working_directory_and_environment_are_part_of_the_key(
    project: Path, tmp_path: Path
):
    config = config_file(project)
    config.write_text(
        config.read_text() + "\nhere: {{ getcwd() }}\nhome: {{ user_home_dir() }}\n"
        "who: {{ greeting | default('none') }}\n"
    )
    settle()
    plain, _ = pp(project)
    assert pp(project) == (plain, False)
    hi, rendered = pp(project, "-D", "greeting=hi")
    assert rendered and "who: hi" in hi
    elsewhere, rendered = pp(project, cwd=tmp_path)
    assert rendered and f"here: {tmp_path}" in elsewhere
    other_home, rendered = pp(project, env={"HOME": str(tmp_path)})
    assert rendered and f"home: {tmp_path}" in other_home
    assert pp(project) == (plain, False)


@pytest.mark.parametrize(
    "line",
    ["when: {{ utcisotime() }}", "pick: {{ [1, 2, 3] | random }}", "thing: '{{ cycler(1) }}'"],
)
def test_text_that_differs_between_runs_is_never_stored(project: Path, line: str):
    """A clock, Jinja's random, an object's address."""
    config = config_file(project)
    config.write_text(config.read_text() + f"\n{line}\n")
    settle()
    assert pp(project)[1]
    assert pp(project)[1]


def test_output_to_a_file_is_not_cached(project: Path, tmp_path: Path):
    settle()
    out = tmp_path / "pp.yaml"
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", PROBE, "-p", str(project), "pp", "-o", str(out)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0 and proc.stderr.endswith("RENDERED"), proc.stderr
    assert out.read_text() == pp(project)[0]


def test_a_replayed_pp_imports_neither_jinja2_nor_yaml_nor_torch(project: Path):
    settle()
    pp(project)
    code = (
        "import sys\n"
        "from forgather.cli.main import main\n"
        f"main(['-p', {str(project)!r}, 'pp'])\n"
        "heavy = [m for m in ('jinja2', 'yaml', 'torch', 'transformers', 'platformdirs', "
        "'dataclasses', 'pathlib') if m in sys.modules]\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=project)  # fmt: skip
    assert proc.stderr.endswith("[]"), proc.stderr


def test_a_config_file_outside_the_search_path_is_fingerprinted(project: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "c.yaml").write_text("main: one\n")
    settle()
    pp(project, "-t", str(elsewhere / "c.yaml"))
    assert pp(project, "-t", str(elsewhere / "c.yaml")) == ("main: one\n", False)
    (elsewhere / "c.yaml").write_text("main: two\n")
    assert pp(project, "-t", str(elsewhere / "c.yaml"))[0] == "main: two\n"


def test_where_the_project_is_found_is_part_of_the_fingerprint(project: Path, tmp_path: Path):
    """A -p link repointed, a nearer meta.yaml or forgather_workspace/ that appears."""
    link = tmp_path / "current"
    link.symlink_to(project)
    settle()
    first, _ = pp(link)
    assert pp(link) == (first, False)
    run_cli("ws", "project", "--name", "Q", cwd=tmp_path)
    (tmp_path / "q" / "templates" / "project.yaml").write_text("main: q\n")
    link.unlink()
    link.symlink_to(tmp_path / "q")
    assert pp(link)[0] != first

    sub = project / "sub"  # -p a directory inside the project: the project is found above
    sub.mkdir()
    settle()
    pp(sub)
    assert pp(sub) == (pp(project)[0], False)
    run_cli("ws", "project", "--name", "Sub", cwd=project)  # now sub is a project itself
    (sub / "templates" / "project.yaml").write_text("main: sub\n")
    assert pp(sub) == (pp(sub, "--no-cache")[0], True)


def test_a_linked_template_directory_is_followed(project: Path, tmp_path: Path):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hp.yaml").write_text("lr: 0.1\n")
    (project / "templates" / "common").symlink_to(shared)
    config_file(project).write_text('main:\n    {% include "common/hp.yaml" %}\n')
    settle()
    pp(project)
    assert pp(project)[1] is False
    (shared / "hp.yaml").write_text("lr: 0.5\n")
    assert "lr: 0.5" in pp(project)[0]


def test_a_damaged_entry_is_a_miss_and_is_replaced(project: Path, tmp_path: Path):
    settle()
    text, _ = pp(project)
    pp(project)
    for entry in (tmp_path / "cache" / "pp").glob("*.json"):
        entry.write_text('{"key": 1, "paths": [1], "fingerprint": "x", "value": "stale"}')
    assert pp(project) == (text, True)
    assert pp(project) == (text, False)


def test_pp_from_a_deleted_working_directory_renders(project: Path, tmp_path: Path):
    gone = tmp_path / "gone"
    gone.mkdir()
    code = (
        "import os, sys\n"
        f"os.chdir({str(gone)!r}); os.rmdir({str(gone)!r})\n"
        "from forgather.cli.main import main\n"
        f"sys.exit(main(['-p', {str(project)!r}, 'pp']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == pp(project, "--no-cache")[0]
