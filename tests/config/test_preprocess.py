"""Every row of the preprocessor table of LANGUAGE.md, and multi-template files."""

import pytest

from forgather.config import preprocess
from forgather.config.preprocess import split_templates


@pytest.mark.parametrize(
    ("written", "becomes"),
    [
        ("-- extends 'a.yaml'", "{% extends 'a.yaml' %}"),
        ("-- set ns.x = 1", "{% set ns.x = 1 %}"),
        ("<< if x", "{%- if x %}"),
        (">> endif", "{% endif -%}"),
        ("== super()", "{{ super() }}"),
        ("=> value", "{{ (value)|trim('\\n') }}"),
        ("## a comment", "{# a comment #}"),
        ("x: 1  ## note", "x: 1"),
        ("x: 1 ### note", "x: 1"),
        ("    -- set y = 2", "    {% set y = 2 %}"),
        ("  ## indented comment", "  {# indented comment #}"),
        ("url: http://x/#frag", "url: http://x/#frag"),
        ("# plain YAML comment", "# plain YAML comment"),
        ("{% if x %}a{% endif %}", "{% if x %}a{% endif %}"),
        ("<<: *base", "<<: *base"),
        ("--- ", "--- "),
    ],
)
def test_line_forms(written, becomes):
    assert preprocess(written) == becomes


def test_block_closes_at_same_or_lower_indent_and_at_end():
    text = "[a]\n  x: 1\n  [b]\n  y: 2\n  [c]\nz: 3\n[d]\nw: 4\n"
    assert preprocess(text).split("\n") == [
        "{% block a %}",
        "  x: 1",
        "  {% block b %}",
        "  y: 2",
        "  {% endblock %}{% block c %}",
        "z: 3",
        "{% endblock %}{% endblock %}{% block d %}",
        "w: 4",
        "{% endblock %}",
    ]


def test_trimmed_block():
    assert (
        preprocess("[name!]\n  text\n")
        == "{% block name %}{% filter trim %}\n  text\n{% endfilter %}{% endblock %}"
    )


def test_same_number_of_lines():
    text = "-- set a = 1\n[b]\n  == a\n## c\nd: 1  ## e\n  [f!]\n"
    assert len(preprocess(text).split("\n")) == len(text.split("\n"))


def test_rendered_blocks_and_statements(load):
    cfg = load(
        """
        -- set ns = namespace(x=2)
        main: !call:dict
            [args]
            x: {{ ns.x }}  ## trailing comments vanish
            name: "{{ 'n' }}"
        """
    )
    assert cfg.build("main") == {"x": 2, "name": "n"}


def test_trim_prefixes_control_whitespace(load):
    cfg = load("a: [\n<< if true\n  1\n>> endif\n  ]\n")
    assert cfg.build("a") == [1]


def test_print_trimmed(load):
    template = "-- set text = '\\n  mid\\n'\na: |\n  start\n=> text\n"
    assert load(template).build("a") == "start\nmid\n"
    assert load(template.replace("=>", "==")).build("a") == "start\n\nmid\n"


def test_split_templates():
    text = "main: 1\n#---- one ----\na: 1\n#------- dir/two.yaml ---\nb: 2\n"
    sections = split_templates(text)
    assert [(s.name, s.first_line) for s in sections] == [
        (None, 1),
        ("one", 3),
        ("dir/two.yaml", 5),
    ]
    assert sections[1].text.strip() == "a: 1"


def test_sub_templates_are_addressable_by_name(templates):
    templates.write(
        "lib.yaml",
        """
        #---- lib.first ----
        first: 1
        #---- lib.second ----
        -- include 'lib.first'
        second: 2
        """,
    )
    templates.write("main.yaml", "-- include 'lib.second'\nmain: 0\n")
    cfg = templates.env().load("main.yaml")
    assert cfg.build() == {"first": 1, "second": 2, "main": 0}


def test_sub_template_of_the_same_file(templates):
    templates.write(
        "main.yaml",
        """
        -- include 'main.part'
        top: 1
        #---- main.part ----
        part: 2
        """,
    )
    assert templates.env().load("main.yaml").build() == {"part": 2, "top": 1}
