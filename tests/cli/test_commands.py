"""Every command on the example projects, in a subprocess, against golden files."""

from __future__ import annotations

import pytest

from .conftest import EXAMPLES, TEMPLATE_PROJECT, TUTORIAL, assert_golden, run_cli

T = str(TUTORIAL)

# (golden file, arguments): deterministic output, compared byte for byte.
GOLDEN_CASES = [
    ("ls.txt", ["-p", T, "ls"]),
    ("index.md", ["-p", T, "index"]),
    ("meta.txt", ["-p", T, "meta"]),
    ("tlist.txt", ["-p", T, "tlist"]),
    ("tlist.md", ["-p", T, "tlist", "--format", "md"]),
    ("pp.yaml", ["-p", T, "pp"]),
    ("targets.txt", ["-p", T, "targets"]),
    ("trefs.txt", ["-p", T, "-t", "3_sub_templates.yaml", "trefs"]),
    ("trefs.md", ["-p", T, "-t", "3_sub_templates.yaml", "trefs", "--format", "md"]),
    ("trefs.dot", ["-p", T, "-t", "3_sub_templates.yaml", "trefs", "--format", "dot"]),
    ("code_py.txt", ["-p", T, "code"]),
    ("construct.txt", ["-p", T, "construct"]),
    ("construct_meta.txt", ["-p", T, "construct", "meta"]),
    ("graph.dot", ["-p", T, "graph", "main"]),
    ("graph.mmd", ["-p", T, "graph", "--format", "mermaid"]),
    ("diff.txt", ["-p", T, "diff", "1_inheritance.yaml", "2_includes.yaml"]),
    ("template_project_construct.txt", ["-p", str(TEMPLATE_PROJECT), "construct"]),
]


def without_templatelib(text: str) -> str:
    """Drop what comes from templatelib/: other packages add templates there.

    A section (a header line at column 0, or a ``## `` Markdown heading, with
    its indented or bulleted lines) whose header names templatelib/ goes, and
    so does any other line naming it.
    """
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        is_header = line.startswith("## ") or (line[:1].strip() and line.rstrip().endswith(":"))
        if is_header:
            dropping = "templatelib/" in line
        if not dropping and "templatelib/" not in line:
            kept.append(line)
    return "".join(kept)


@pytest.mark.parametrize(("golden", "args"), GOLDEN_CASES, ids=[g for g, _ in GOLDEN_CASES])
def test_golden_output(golden: str, args: list[str]):
    result = run_cli(*args)
    assert result.rc == 0, result.err
    assert result.err == ""
    assert_golden(golden, without_templatelib(result.out))


def test_templatelib_is_searched_last():
    lines = run_cli("-p", T, "meta").out.splitlines()
    searchpath = lines[lines.index("searchpath:") + 1 :]
    assert searchpath[-1].endswith("/templatelib/base")
    assert all("/templatelib/" in line for line in searchpath[2:])


def test_ls_recursive_lists_every_example_project():
    result = run_cli("ls", "-r", cwd=EXAMPLES)
    assert result.rc == 0, result.err
    assert "template_project\n  Template Project: " in result.out
    assert "tutorials/project_composition\n  Project Composition: " in result.out
    assert "  * 5_every_tag.yaml" in result.out
    assert "PARSE ERROR" not in result.out


def test_check_passes_on_the_example():
    result = run_cli("-p", T, "check")
    assert (result.rc, result.out) == (0, "ok: 5_every_tag.yaml: 2 targets, no problems\n")


def test_check_reports_a_misspelt_keyword(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("main: !partial:round { ndigitz: 2 }\n")
    result = run_cli("-p", T, "-t", str(broken), "check")
    assert result.rc == 1
    assert "ndigitz" in result.out


def test_construct_with_var_and_target():
    result = run_cli("-p", T, "construct", "--var", "scale=10")
    assert "'scaled': 70" in result.out
    result = run_cli("-p", T, "-t", "2_includes.yaml", "construct", "meta")
    assert "'config_name': 'Includes'" in result.out


def test_output_file(tmp_path):
    out = tmp_path / "code.py"
    result = run_cli("-p", T, "code", "-o", str(out))
    assert (result.rc, result.out) == (0, "")
    namespace: dict = {}
    exec(out.read_text(), namespace)
    assert namespace["construct"]()["total"] == 6
    # The global form, before the command, works the same.
    result = run_cli("-p", T, "-o", str(tmp_path / "t.txt"), "targets")
    assert (tmp_path / "t.txt").read_text() == "meta\nmain\n"


def test_svg_without_graphviz_is_a_clear_error(tmp_path, monkeypatch):
    # A PATH without `dot`; the subprocess's python is started by absolute path.
    monkeypatch.setenv("PATH", str(tmp_path))
    result = run_cli("-p", T, "graph", "--format", "svg")
    assert result.rc == 1
    assert "needs Graphviz's `dot`" in result.err
    assert result.err.endswith("; --format dot or mermaid works without it\n")
    assert "Traceback" not in result.err
    trefs = run_cli("-p", T, "trefs", "--format", "svg")
    assert trefs.err.endswith("; --format dot works without it\n")  # trefs draws no mermaid


def test_mermaid_written_to_a_markdown_file_is_fenced(tmp_path):
    plain = run_cli("-p", T, "graph", "--format", "mermaid").out
    assert run_cli("-p", T, "graph", "--format", "mermaid", "-o", str(tmp_path / "g.md")).rc == 0
    assert (tmp_path / "g.md").read_text() == f"```mermaid\n{plain.rstrip()}\n```\n"
    assert not plain.startswith("```")


def test_unknown_target():
    result = run_cli("-p", T, "code", "nope")
    assert result.rc == 1
    assert result.err == "forgather: error: no target 'nope' in this config (targets: meta, main)\n"
