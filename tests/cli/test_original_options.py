"""The original Forgather's project and config commands, spelled as it spells them.

Each test runs ``forgather`` on a small workspace written in the original's
idioms (``forgather_workspace/meta_defaults.yaml`` with ``-- block`` search
paths, a ``meta.yaml`` that extends it, configs that extend a base template
and declare options in a ``dynamic_args: !dlist``) and checks what the
option does, with the original's spelling.
"""

from __future__ import annotations

import argparse
import shutil
import textwrap
from pathlib import Path

import pytest

from forgather.cli.dynamic_args import add_dynamic_args, normalize_specs

from .conftest import run_cli

META_DEFAULTS = """\
-- set ns = namespace()
-- include "base_directories.yaml"
searchdir:
-- block searchdir_project
    - "{{ joinpath(project_dir, 'templates') }}"
-- endblock searchdir_project
-- block searchdir_common
    - "{{ joinpath(workspace_root, 'forgather_workspace') }}"
-- endblock searchdir_common
-- block configs
-- endblock configs
"""

META = """\
-- extends "meta_defaults.yaml"
-- block configs
name: "{name}"
description: "{description}"
config_prefix: "configs"
default_config: "default.yaml"
-- endblock configs
"""

BASE = """\
-- set ns = namespace()
meta: &meta_output
    config_name: "{{ title | default('Base') }}"
    config_description: "a config of the original's shape"
-- block body
-- endblock body
"""

DEFAULT = """\
-- extends "base.yaml"
-- block body
dynamic_args: !dlist
    tie_word_embeddings:
        names: "--tie-word-embeddings"
        action: "store_true"
        help: "Tie input and output embeddings"
    attn_implementation:
        names: "--attn-implementation"
        type: "str"
        help: "Attention implementation"
    dtype:
        names: "--dtype"
        type: "str"
    batch_size:
        names: "--batch-size"
        type: "int"
        default: 8
main: !singleton:builtins:dict
    tie: {{ tie_word_embeddings | default(True) }}
    attn: {{ attn_implementation | default("eager") }}
    dtype: {{ dtype | default("float32") }}
    batch_size: {{ batch_size | default(4) }}
word_count: !singleton:builtins:len [ "abcd" ]
sorted_later: !partial:builtins:sorted [ [ 3, 1, 2 ] ]
-- endblock body
"""

BROKEN = """\
-- extends "base.yaml"
-- block body
main: {{ undefined_thing.x }}
-- endblock body
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """A workspace with two projects: ``demo`` (three configs) and ``other``."""
    root = tmp_path_factory.mktemp("original_ws")
    _write(root / "forgather_workspace" / "meta_defaults.yaml", META_DEFAULTS)
    _write(
        root / "forgather_workspace" / "base_directories.yaml",
        '-- set ns.forgather_dir = joinpath(workspace_root, "..")\n',
    )
    for name, description in (("demo", "The demo"), ("other", "Another one")):
        project = root / name
        _write(project / "meta.yaml", META.format(name=name.title(), description=description))
        _write(project / "templates" / "base.yaml", BASE)
        _write(project / "templates" / "configs" / "default.yaml", DEFAULT)
    _write(root / "demo" / "templates" / "configs" / "broken.yaml", BROKEN)
    return root


# -- global options ------------------------------------------------------------------


def test_no_dyn_before_or_after_the_command(ws: Path):
    demo = ws / "demo"
    for args in (["--no-dyn", "pp"], ["pp", "--no-dyn"]):
        result = run_cli(*args, cwd=demo)
        assert result.rc == 0, result.err
        assert not result.out.startswith("# Dynamic arguments received")
        assert "    tie: True\n" in result.out  # the template's default: no value passed
    refused = run_cli("--no-dyn", "pp", "--dtype", "bf16", cwd=demo)
    assert refused.rc == 2 and "unrecognized arguments: --dtype bf16" in refused.err


def test_output_file_is_a_spelling_of_output(ws: Path, tmp_path: Path):
    for option in ("-o", "--output-file"):
        target = tmp_path / f"pp{option}.yaml"
        result = run_cli("pp", option, str(target), cwd=ws / "demo")
        assert result.rc == 0, result.err
        text = target.read_text()
        assert text.startswith("meta: &meta_output\n") and "    dtype: float32\n" in text
        # as in the original, the dynamic-arguments line goes to the terminal, not the file
        assert result.out == "# Dynamic arguments received: {'tie_word_embeddings': False}\n\n"


def test_edit_writes_under_tmp_and_opens_the_editor(ws: Path, tmp_path: Path, monkeypatch):
    shutil.copytree(ws, tmp_path / "ws")
    demo = tmp_path / "ws" / "demo"
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", "cat")  # the "editor" prints the file it is given
    result = run_cli("-t", "default.yaml", "pp", "-e", cwd=demo)
    assert result.rc == 0, result.err
    written = demo / "tmp" / "default_pp.yaml"
    assert written.read_text().startswith("meta: &meta_output\n")
    assert f"Opening {Path('tmp') / 'default_pp.yaml'} in cat" in result.err
    assert result.out.endswith(written.read_text())  # what the editor showed
    code = run_cli("--edit", "code", cwd=demo)  # no -t: named after the command alone
    assert code.rc == 0, code.err
    assert "def construct(" in (demo / "tmp" / "code.py").read_text()


# -- ls ------------------------------------------------------------------------------------


def test_ls_projects_as_arguments_recursive_and_debug(ws: Path):
    result = run_cli("ls", "demo", "other", cwd=ws)
    assert result.rc == 0, result.err
    blocks = result.out.split("\n\n")
    assert blocks[0].startswith("demo\n  Demo: The demo\n")
    assert "  * default.yaml  Base: a config of the original's shape" in blocks[0]
    assert "broken.yaml   PARSE ERROR: templates/configs/broken.yaml:3:" in blocks[0]
    assert blocks[1].startswith("other\n  Other: Another one\n")

    recursive = run_cli("ls", "-r", cwd=ws)
    assert [b.split("\n")[0] for b in recursive.out.split("\n\n")] == ["demo", "other"]

    # a directory named on the command line that cannot be listed: exit code 1
    missing = run_cli("ls", "demo", "nowhere", cwd=ws)
    assert missing.rc == 1
    assert "nowhere\n  PARSE ERROR: " in missing.out and missing.out.startswith("demo\n")
    missing_root = run_cli("ls", "-r", "nowhere", cwd=ws)
    assert (missing_root.rc, missing_root.out) == (1, "nowhere\n  ERROR: no such directory\n")

    debug = run_cli("ls", "-d", "demo", cwd=ws)
    assert debug.rc == 0
    assert "PARSE ERROR" in debug.out
    # the whole error, with the template line, on stderr (an error in the config's own
    # block has no chain of templates to show)
    assert debug.err.startswith("broken.yaml: ")
    assert "main: {{ undefined_thing.x }}" in debug.err and "     3 | " in debug.err


def test_commands_find_the_project_above_the_current_directory(ws: Path):
    configs = ws / "demo" / "templates" / "configs"
    listing = run_cli("ls", cwd=configs)
    assert listing.rc == 0, listing.err
    assert listing.out.startswith(f"{ws / 'demo'}\n  Demo: The demo\n")
    assert (
        run_cli("targets", cwd=configs).out
        == "meta\ndynamic_args\nmain\nword_count\nsorted_later\n"
    )


# -- pp and dynamic args -------------------------------------------------------------------


def test_pp_passes_implied_values_and_prints_what_it_received(ws: Path):
    plain = run_cli("pp", cwd=ws / "demo")
    assert plain.out.startswith(
        "# Dynamic arguments received: {'tie_word_embeddings': False}\n\nmeta: &meta_output\n"
    )
    # store_true not given is False (the original's rule); the spec's default (8) is
    # not passed: the template's own default (4) decides
    assert "    tie: False\n" in plain.out and "    batch_size: 4\n" in plain.out
    given = run_cli("pp", "--batch-size", "3", "--dtype", "bf16", "--tie-word-embeddings",
                    cwd=ws / "demo")  # fmt: skip
    first = given.out.split("\n", 1)[0]
    assert first == (
        "# Dynamic arguments received: "
        "{'tie_word_embeddings': True, 'dtype': 'bf16', 'batch_size': 3}"
    )
    assert "    tie: True\n    attn: eager\n    dtype: bf16\n    batch_size: 3\n" in given.out


def test_pp_debug_shows_each_templates_jinja_source(ws: Path):
    result = run_cli("pp", "-d", cwd=ws / "demo")
    assert result.rc == 0, result.err
    header = f"{' configs/default.yaml ':-^80}\n"
    assert header in result.out
    after = result.out.split(header, 1)[1]
    assert after.startswith('     1: {% extends "base.yaml" %}\n     2: {% block body %}\n')
    assert f"{' base.yaml ':-^80}\n" in result.out
    assert "\nmeta: &meta_output\n" in result.out  # then the rendered YAML


def test_config_options_win_over_builtin_options_of_the_same_name(ws: Path):
    # `model` has --attn-implementation, --dtype and --batch-size of its own; the config
    # declares them too. The command line parses (no "conflicting option string") and
    # reaches the command, which finds no model target in this config.
    result = run_cli("model", "construct", "--attn-implementation", "sdpa", "--dtype",
                     "bfloat16", "--batch-size", "3", cwd=ws / "demo")  # fmt: skip
    assert result.rc == 1
    assert "no 'model' target" in result.err
    assert "conflicting" not in result.err
    help_text = run_cli("model", "--help", cwd=ws / "demo").out
    config_part = help_text.split("options declared by the config (dynamic_args):")[1]
    assert "--attn-implementation ATTN_IMPLEMENTATION" in config_part
    assert "--batch-size BATCH_SIZE" in config_part


def test_a_shadowed_builtin_receives_the_value_too():
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    parser.add_argument("--dtype")
    parser.add_argument("-b", "--batch-size", type=int, default=2)
    parser.add_argument("--attn-implementation", default="eager")
    specs = normalize_specs(
        [
            {"names": "--dtype", "type": "str"},
            {"names": "--batch-size", "type": "str"},
            {"names": "--attn-implementation", "action": "store_true"},
        ]
    )
    options = add_dynamic_args(parser, specs)

    args = parser.parse_args(["--dtype", "bf16", "--batch-size", "3"])
    assert options.values(args) == {
        "dtype": "bf16",
        "batch_size": "3",
        "attn_implementation": False,
    }
    # the command's own dests: the given values, in the built-in's type
    assert (args.dtype, args.batch_size, args.attn_implementation) == ("bf16", 3, "eager")

    args = parser.parse_args(["-b", "5"])  # -b stays the built-in's
    assert options.values(args) == {"attn_implementation": False}
    assert (args.dtype, args.batch_size) == (None, 5)


# -- code, construct, graph ------------------------------------------------------------


def test_code_and_construct_target_and_call(ws: Path):
    demo = ws / "demo"
    code = run_cli("code", "--target", "word_count", cwd=demo)
    assert code.rc == 0, code.err
    assert "len" in code.out and "def construct(" in code.out
    assert run_cli("construct", "--target", "word_count", cwd=demo).out == "4\n"
    called = run_cli("construct", "--target", "sorted_later", "--call", cwd=demo)
    assert called.out == "[1, 2, 3]\n"
    not_callable = run_cli("construct", "--target", "word_count", "--call", cwd=demo)
    assert not_callable.rc == 1 and "built a int, not callable" in not_callable.err


def test_graph_formats_of_the_original(ws: Path):
    demo = ws / "demo"
    none = run_cli("graph", "--format", "none", cwd=demo)
    assert (none.rc, none.out) == (0, "")
    broken = run_cli("-t", "broken.yaml", "graph", "--format", "none", cwd=demo)
    assert broken.rc == 1 and "undefined_thing" in broken.err  # a check that it loads

    fconfig = run_cli("graph", "--format", "fconfig", cwd=demo).out
    assert "main: !call:builtins:dict\n    tie: False\n    attn: 'eager'\n" in fconfig
    assert "word_count: !call:builtins:len\n    0: 'abcd'\n" in fconfig

    yaml_out = run_cli("graph", "--format", "yaml", cwd=demo).out
    assert "!call:builtins:len" in yaml_out and "abcd" in yaml_out

    repr_out = run_cli("graph", "--format", "repr", cwd=demo).out
    assert repr_out.startswith("{'meta': ") and "spec='builtins:len'" in repr_out

    python = run_cli("graph", "--format", "python", cwd=demo).out
    assert "def construct(" in python and "dict(" in python


# -- tlist, trefs, targets, index, meta -----------------------------------------------


def test_tlist_and_trefs_file_formats(ws: Path):
    demo = ws / "demo"
    tlist = run_cli("tlist", "--format", "files", cwd=demo).out.splitlines()
    assert tlist[:5] == [
        "templates/base.yaml",
        "templates/configs/broken.yaml",
        "templates/configs/default.yaml",
        "../forgather_workspace/base_directories.yaml",
        "../forgather_workspace/meta_defaults.yaml",
    ]
    assert all(Path(demo, line).is_file() for line in tlist)  # the rest: the library
    trefs = run_cli("trefs", "--format", "files", cwd=demo)
    assert trefs.out == "templates/configs/default.yaml\ntemplates/base.yaml\n"
    outside = run_cli("-p", str(demo), "trefs", "--format", "files", cwd=ws.parent)
    assert outside.out == f"{demo}/templates/configs/default.yaml\n{demo}/templates/base.yaml\n"
    tree = run_cli("trefs", "--format", "tree", cwd=demo)
    assert tree.out == (
        "configs/default.yaml (templates/configs/default.yaml)\n"
        "└── base.yaml [extends] (templates/base.yaml)\n"
    )
    svg = run_cli("trefs", "--format", "svg", cwd=demo)
    if shutil.which("dot"):
        assert svg.rc == 0 and "<svg" in svg.out
    else:
        assert svg.rc == 1 and "needs Graphviz's `dot` program" in svg.err
        assert svg.err.endswith("; --format dot works without it\n")  # trefs has no mermaid


def test_targets_index_meta_take_output_file(ws: Path, tmp_path: Path):
    for command, expected in (
        ("targets", "meta\ndynamic_args\nmain\nword_count\nsorted_later\n"),
        ("index", "# Demo\n"),
        ("meta", "name: Demo\n"),
    ):
        out = tmp_path / f"{command}.txt"
        result = run_cli(command, "--output-file", str(out), cwd=ws / "demo")
        assert (result.rc, result.out) == (0, ""), result.err
        assert out.read_text().startswith(expected)


# -- ws ------------------------------------------------------------------------------------


def test_ws_create_and_ws(tmp_path: Path):
    shared = tmp_path / "shared_templates"
    shared.mkdir()
    (tmp_path / "fg" / "templatelib" / "examples").mkdir(parents=True)  # an original checkout
    result = run_cli("ws", "create", "--name", "My Work.space", "--description", "tests",
                     "--forgather-dir", str(tmp_path / "fg"), "-l", "examples",
                     "--search-path", str(shared), cwd=tmp_path)  # fmt: skip
    assert result.rc == 0, result.err
    workspace = tmp_path / "my_workspace"
    meta_defaults = (workspace / "forgather_workspace" / "meta_defaults.yaml").read_text()
    assert f'    - "{shared}"\n' in meta_defaults
    assert f'    - "{tmp_path / "fg" / "templatelib" / "examples"}"\n' in meta_defaults
    again = run_cli("ws", "create", "--name", "x", "--description", "y", "my_workspace",
                    cwd=tmp_path)  # fmt: skip
    assert again.rc == 1 and "already exists" in again.err
    (workspace / "proj").mkdir()
    assert run_cli("ws", cwd=workspace / "proj").out == f"{workspace}\n"


def test_ws_create_refuses_a_library_or_forgather_dir_that_is_not_there(tmp_path: Path):
    missing_lib = run_cli("ws", "create", "--name", "a", "-l", "examples", cwd=tmp_path)
    assert missing_lib.rc == 1
    assert "-l examples: no template library" in missing_lib.err
    assert "(there: base, " in missing_lib.err and " models, " in missing_lib.err
    missing_dir = run_cli("ws", "create", "--name", "b", "--forgather-dir", "/nonexistent",
                          cwd=tmp_path)  # fmt: skip
    assert missing_dir.rc == 1 and "not a Forgather directory" in missing_dir.err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    noted = run_cli("ws", "init", "--name", "c", str(tmp_path / "later"), cwd=tmp_path)
    assert noted.rc == 0
    assert f"note: search path {tmp_path / 'later'} does not exist (yet)" in noted.err


# -- the command table -----------------------------------------------------------------


def test_convert_and_update_vocab_are_commands():
    from forgather.cli.registry import COMMANDS

    assert COMMANDS["convert"][0] == COMMANDS["update-vocab"][0] == "forgather.cli.convert"
    listing = run_cli("--help").out
    assert "\n  convert " in listing and "\n  update-vocab " in listing


# -- project -------------------------------------------------------------------------------


def test_project_create_show_and_new_config(tmp_path: Path):
    run_cli("ws", "init", "--name", "W", cwd=tmp_path)
    source = tmp_path / "source.yaml"
    source.write_text('meta: {config_name: "Copied", config_description: "from a file"}\nmain: 1\n')
    created = run_cli("project", "create", "--name", "P One", "--description", "d", cwd=tmp_path)
    assert (created.rc, created.out) == (0, "created project p_one\n")
    copied = run_cli("project", "create", "--name", "Two", "--project-dir-name", "second",
                     str(source), cwd=tmp_path)  # fmt: skip
    assert copied.rc == 0, copied.err
    assert "  * default.yaml  Copied: from a file" in run_cli("ls", cwd=tmp_path / "second").out
    again = run_cli("project", "create", "--name", "P One", cwd=tmp_path)
    assert again.rc == 1 and "already exists" in again.err

    project = tmp_path / "p_one"
    assert run_cli("project", cwd=project / "templates").out == f"{project}\n"
    assert run_cli("project", "show", cwd=project).out.startswith("name: P One\ndescription: d\n")
    for name, kind, where in [
        ("extra.yaml", "config", project / "templates" / "configs"),
        ("top.yaml", "project", project / "templates"),
        ("shared.yaml", "ws", tmp_path / "forgather_workspace"),
    ]:
        result = run_cli("project", "new_config", name, "--type", kind, cwd=project)
        assert (result.rc, result.out) == (0, f"created {where / name}\n")
    listing = run_cli("ls", cwd=project).out
    assert "    extra.yaml    extra" in listing and "PARSE ERROR" not in listing
    assert run_cli("-t", "extra", "construct", cwd=project).rc == 0
    top = run_cli("-t", str(project / "templates" / "top.yaml"), "construct", cwd=project)
    assert (top.rc, top.out) == (0, "'Main Output'\n")
    duplicate = run_cli("project", "new_config", "extra.yaml", cwd=project)
    assert duplicate.rc == 1 and "already exists" in duplicate.err
    # SOURCE relative to the -p project (docs/cli.md's example), from outside it.
    copy = run_cli("-p", "p_one", "project", "new_config", "bigger.yaml",
                   "templates/configs/extra.yaml", cwd=tmp_path)  # fmt: skip
    assert copy.rc == 0, copy.err
    extra = project / "templates" / "configs" / "extra.yaml"
    assert (extra.parent / "bigger.yaml").read_text() == extra.read_text()
