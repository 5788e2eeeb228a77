"""A `-D` variable that no template of the config reads: a warning, and a sweep refuses it.

Without them a misspelt name (`-D max_step=5`) changes nothing and says nothing: a
training run goes on with the config's own 400 steps, and a sweep over an unread
variable runs the same trial N times and still names a "best" value.
"""

from __future__ import annotations

from forgather.config import ConfigEnvironment

from .conftest import EXAMPLES, run_cli

TINY_LLAMA = EXAMPLES / "tutorials" / "tiny_llama"


def test_a_misspelt_variable_is_named_with_the_closest_one_read():
    result = run_cli("-p", str(TINY_LLAMA), "-D", "max_step=5", "-D", "block_size=64", "pp")
    assert result.rc == 0  # a warning: the config still renders
    assert result.err.splitlines() == [
        "forgather: warning: -D max_step: no template of configs/train_tiny_llama.yaml reads "
        "this variable (did you mean max_steps?)"
    ]  # block_size is read (by an included dataset template): no word about it
    assert "max_steps: 400" in result.out


def test_variables_that_are_read_print_nothing():
    result = run_cli("-p", str(TINY_LLAMA), "-D", "max_steps=5", "pp", "--no-cache")
    assert result.rc == 0 and result.err == ""
    assert "max_steps: 5" in result.out


def test_a_sweep_over_an_unread_variable_starts_no_trial(tmp_path):
    result = run_cli("-p", str(TINY_LLAMA), "sweep", "--grid", "lr=1e-3,3e-3",
                     "--sweep-dir", str(tmp_path / "sweep"), "--", "--max-steps", "2")  # fmt: skip
    assert result.rc == 2
    assert "--grid lr: no template of train_tiny_llama.yaml reads this variable" in result.err
    assert not (tmp_path / "sweep").exists()


def test_variables_read_follows_extends_include_and_import(tmp_path):
    (tmp_path / "base.yaml").write_text("-- import 'macros.yaml' as m\nbase: {{ width }}\n")
    (tmp_path / "macros.yaml").write_text("-- macro twice(x)\n{{ x * factor }}\n-- endmacro\n")
    (tmp_path / "part.yaml").write_text("part: {{ depth | default(2) }}\n")
    (tmp_path / "main.yaml").write_text(
        "-- extends 'base.yaml'\n-- set local = 1\n-- include 'part.yaml'\n{{ local }} {{ ns }}\n"
    )
    env = ConfigEnvironment([str(tmp_path)])
    assert {"width", "factor", "depth", "ns"} <= env.variables_read("main.yaml")
    assert "local" not in env.variables_read("main.yaml")  # set by the template itself
    (tmp_path / "dynamic.yaml").write_text("-- include which\n")
    assert env.variables_read("dynamic.yaml") is None  # named at render time: cannot tell
    cfg = env.load("main.yaml", width=1, factor=2, ns=3)
    assert cfg.variables_read() == env.variables_read("main.yaml")
