"""Rendering rules shared with the original Forgather, so its templates render the same.

Each test is a template written in the original's idioms and the text or
value the original prints for it (docs/migrating.md, "Rendering").
"""

from __future__ import annotations

import datetime
import re

import yaml

from forgather.config import ConfigEnvironment


def test_an_indented_expression_line_prints_at_column_zero(load):
    cfg = load(
        """
        -- set callbacks = "trainer_callbacks:\\n    - progress"
        main:
                == callbacks
                => callbacks
        """
    )
    assert cfg.pp.splitlines()[1:5] == ["trainer_callbacks:", "    - progress"] * 2


def test_super_in_an_indented_block_keeps_the_parents_indentation(templates):
    templates.write("base.yaml", "main: !dict\n    [args]\n    a: 1\n    b: 2\n")
    templates.write("child.yaml", "-- extends 'base.yaml'\n    [args]\n    == super()\n    c: 3\n")
    assert templates.env().load("child.yaml").build("main") == {"a": 1, "b": 2, "c": 3}


def test_a_block_ending_at_end_of_file_without_newline_ends_its_line(templates):
    templates.write("lr.yaml", "[lr]\nconstant_lr: 1.0e-6")  # no final newline
    templates.write("child.yaml", "-- extends 'lr.yaml'\n")
    templates.write(
        "main.yaml",
        "-- include 'child.yaml'\n.define: &collator !dict\n    pad: 0\ncollator: *collator\n",
    )
    cfg = templates.env().load("main.yaml")
    assert "constant_lr: 1.0e-6\n.define: &collator" in cfg.pp
    assert cfg.build("constant_lr") == 1.0e-6 and cfg.build("collator") == {"pad": 0}


def test_an_overridden_block_without_final_newline_does_not_join_the_next_line(templates):
    templates.write("base.yaml", "[head]\nhead: 0\n[tail]\ntail: 0\n")
    templates.write("child.yaml", "-- extends 'base.yaml'\n[head]\nhead: 1")
    assert templates.env().load("child.yaml").build() == {"head": 1, "tail": 0}


def test_utc_times_print_without_an_offset(load):
    cfg = load("a: '{{ utcisotime() }}'\nb: '{{ utcfiletime() }}'\n")
    a, b = cfg.build("a"), cfg.build("b")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", a), a
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d", b), b
    utc = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    assert abs(datetime.datetime.fromisoformat(a) - utc) < datetime.timedelta(minutes=5)


def test_versions_prints_as_a_mapping_of_the_originals_packages(load):
    cfg = load("versions: {{ versions }}\nforgather: '{{ versions.forgather }}'\n")
    versions = cfg.build("versions")
    assert list(versions) == ["python", "torch", "transformers", "accelerate"]
    assert versions["torch"].startswith("2.")
    assert cfg.build("forgather") not in ("", "None")


def test_toyaml_spells_booleans_as_python_does_and_keeps_unicode(load):
    cfg = load(
        "a: {{ False | toyaml }}\nb: {{ flag | toyaml }}\nc: {{ 'é' | toyaml }}\n"
        "d: {{ {'x': [True, None]} | toyaml }}\n",
        flag=True,
    )
    assert cfg.pp.splitlines()[:3] == ["a: False", "b: True", "c: é"]
    assert cfg.build() == {"a": False, "b": True, "c": "é", "d": {"x": [True, None]}}


def test_pp_is_the_text_the_templates_printed(load):
    header = "#" * 13 + " Config Vars " + "#" * 14
    cfg = load("== header\nkey: 1 ## not YAML\n", header=header)
    assert cfg.pp.splitlines()[0] == header
    assert yaml.safe_load(cfg.pp) == {"key": 1}
    assert ConfigEnvironment([]).load_from_string(cfg.pp_template).pp == cfg.pp


def test_an_indented_block_nests_inside_the_block_above_it(templates):
    templates.write(
        "base.yaml",
        "[body]\nmain:\n    a: 1\n    [nested]\n    b: 2\n[tail]\ntail: 0\n",
    )
    templates.write("child.yaml", "-- extends 'base.yaml'\n    [nested]\n    b: 3\n")
    templates.write("whole.yaml", "-- extends 'base.yaml'\n[body]\nmain: {}\n")
    env = templates.env()
    assert env.load("base.yaml").build() == {"main": {"a": 1, "b": 2}, "tail": 0}
    assert env.load("child.yaml").build() == {"main": {"a": 1, "b": 3}, "tail": 0}
    assert env.load("whole.yaml").build() == {"main": {}, "tail": 0}  # replaces nested too
