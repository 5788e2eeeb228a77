"""Every error kind of LANGUAGE.md names the user's file and line and shows the line."""

import pytest

from forgather.config import (
    ArgumentError,
    ConfigError,
    CycleError,
    MissingVariableError,
    RefusedImportError,
    SpecError,
    TemplateError,
    TemplateNotFoundError,
    UndefinedVariableError,
    YamlError,
)


def located(err: ConfigError, path, line: int, text: str) -> None:
    """The message starts with file:line and shows the offending line."""
    message = str(err)
    assert message.startswith(f"{path}:{line}: "), message
    assert f"{line:>4} | {text}" in message, message
    assert err.location.file == str(path) and err.location.line == line


def test_unknown_template(templates):
    path = templates.write("a.yaml", "x: 1\n-- include 'missing.yaml'\n")
    with pytest.raises(TemplateNotFoundError) as info:
        templates.env().load("a.yaml")
    located(info.value, path, 2, "-- include 'missing.yaml'")
    assert "missing.yaml" in info.value.reason


def test_unknown_root_template(templates):
    with pytest.raises(TemplateNotFoundError, match="'nope.yaml'"):
        templates.env().load("nope.yaml")


def test_templates_that_extend_each_other(templates):
    templates.write("a.yaml", "-- extends 'b.yaml'\n")
    b = templates.write("b.yaml", "x: 1\n-- extends 'a.yaml'\n")
    with pytest.raises(TemplateError) as info:
        templates.env().load("a.yaml")
    located(info.value, b, 2, "-- extends 'a.yaml'")
    assert info.value.reason == "templates extend or include each other: a.yaml -> b.yaml -> a.yaml"


def test_a_template_that_includes_itself(templates):
    path = templates.write("a.yaml", "x: 1\ny:\n-- include 'a.yaml'\n")
    with pytest.raises(TemplateError) as info:
        templates.env().load("a.yaml")
    located(info.value, path, 3, "-- include 'a.yaml'")
    assert info.value.reason == "templates extend or include each other: a.yaml -> a.yaml"


def test_a_recursive_include_that_stops_is_not_a_cycle(templates):
    templates.write(
        "n.yaml", "{% if depth < 3 %}{% set depth = depth + 1 %}{% include 'n.yaml' %}{% endif %}"
    )
    templates.write("a.yaml", "{% set depth = 0 %}x: 1\n-- include 'n.yaml'\n")
    assert templates.env().load("a.yaml").build_data() == {"x": 1}


def test_an_unset_namespace_attribute_says_how_to_set_it(templates):
    path = templates.write("a.yaml", "-- set ns = namespace()\nx: {{ ns.lr }}\n")
    with pytest.raises(UndefinedVariableError) as info:
        templates.env().load("a.yaml")
    located(info.value, path, 2, "x: {{ ns.lr }}")
    assert info.value.reason == (
        "the namespace has no attribute (set it first with `-- set ns.NAME = ...`): 'lr'"
    )


def test_an_unclosed_block_shows_the_line_that_opened_it(templates):
    path = templates.write(
        "a.yaml",
        "-- set ns = namespace()\n-- set ns.x = 1\n-- if true\n-- endif\n"
        "-- block main\nmain: 1\nother: 2\n",
    )
    with pytest.raises(TemplateError) as info:
        templates.env().load("a.yaml")
    assert "Unexpected end of template" in info.value.reason
    assert (info.value.opened_at.file, info.value.opened_at.line) == (str(path), 5)
    assert "     5 | -- block main" in str(info.value)


def test_jinja_syntax_error(templates):
    path = templates.write("a.yaml", "x: 1\n-- if x\ny: 2\n")
    with pytest.raises(TemplateError) as info:
        templates.env().load("a.yaml")
    assert "syntax error" in str(info.value)
    assert info.value.location.file == str(path) and info.value.location.line == 3


def test_undefined_variable_in_an_extended_template_shows_the_chain(templates):
    base = templates.write("base.yaml", "a: 1\n[body]\nb: {{ nope }}\n")
    child = templates.write("configs/child.yaml", "-- extends 'base.yaml'\n")
    with pytest.raises(UndefinedVariableError) as info:
        templates.env().load("configs/child.yaml")
    located(info.value, base, 3, "b: {{ nope }}")
    assert info.value.location.chain[0] == (str(child), 1)
    assert "template chain:" in str(info.value)


def test_undefined_variable_in_an_included_sub_template(templates):
    lib = templates.write("lib.yaml", "top: 1\n#---- lib.part ----\n\npart: {{ missing }}\n")
    main = templates.write("main.yaml", "m: 0\n-- include 'lib.part'\n")
    with pytest.raises(UndefinedVariableError) as info:
        templates.env().load("main.yaml")
    located(info.value, lib, 4, "part: {{ missing }}")
    assert (str(main), 2) in info.value.location.chain


def test_yaml_syntax_error_points_at_the_template_line(templates):
    base = templates.write("base.yaml", "a: 1\n[body]\nb: 2\n")
    child = templates.write(
        "child.yaml",
        "-- extends 'base.yaml'\n-- set n = 3\n[body]\nb: {{ n }}\nc: [1, 2\nd: 4\n",
    )
    with pytest.raises(YamlError) as info:
        templates.env().load("child.yaml")
    assert info.value.location.file == str(child)
    assert info.value.location.line in (5, 6)
    assert base  # the error is in the child, not the base


def test_an_unclosed_flow_sequence_shows_where_it_opened_and_where_parsing_failed(templates):
    path = templates.write("open.yaml", "a: 0\nbroken: [1, 2\nmore: 3\n")
    with pytest.raises(YamlError) as info:
        templates.env().load("open.yaml")
    error = info.value
    assert (error.location.file, error.location.line) == (str(path), 3)
    assert (error.opened_at.line, error.opened_at.column) == (2, 8)
    assert str(error).splitlines()[1:] == [
        "     2 | broken: [1, 2",
        "       |         ^ opened here",
        "     3 | more: 3",
        "       |     ^",
    ]


def test_a_construct_left_open_at_end_of_file_is_reported_in_the_file_that_opened_it(templates):
    templates.write("base.yaml", "[blk]\nq: 1\n")
    child = templates.write("child.yaml", "-- extends 'base.yaml'\n[blk]\nq: [\n")
    part = templates.write("part.yaml", "w: [\nv: 1\n")
    templates.write("main.yaml", "z: 0\n-- include 'part.yaml'\n")
    for name, path, line in (("child.yaml", child, 3), ("main.yaml", part, 2)):
        with pytest.raises(YamlError) as info:
            templates.env().load(name)
        assert (info.value.location.file, info.value.location.line) == (str(path), line)


def test_a_caret_is_shown_only_where_the_source_line_is_the_rendered_line(templates):
    templates.write("jinja.yaml", "-- set v = '[1, 2'\nbroken: {{ v }}\nmore: 3\n")
    with pytest.raises(YamlError) as info:
        templates.env().load("jinja.yaml")
    message = str(info.value)
    assert "     2 | broken: {{ v }}" in message
    assert message.count("^") == 1  # under line 3 only: line 2 renders differently


@pytest.mark.parametrize(
    ("line", "cls", "reason"),
    [
        ("x: !frob 1", YamlError, "unknown tag !frob"),
        ("x: !call:no-such", YamlError, "malformed SPEC"),
    ],
)
def test_load_errors_in_an_included_template(templates, line, cls, reason):
    part = templates.write("part.yaml", f"ok: 1\n{line}\n")
    templates.write("main.yaml", "-- include 'part.yaml'\nmain: 1\n")
    with pytest.raises(cls, match=reason) as info:
        templates.env().load("main.yaml")
    located(info.value, part, 2, line)


@pytest.mark.parametrize(
    ("line", "cls", "reason"),
    [
        ("x: !call:math:nothing_here", SpecError, "cannot import 'math:nothing_here'"),
        (
            "x: !call:collections.no_such_mod_q:X",
            SpecError,
            "No module named 'collections.no_such_mod_q'",
        ),
        ("x: !call:os:system [true]", RefusedImportError, "'os.system' is refused by default"),
        ("x: !call:len [1, 2]", ArgumentError, "too many positional arguments"),
        ("x: !call:dict.fromkeys {wrong: 1}", ArgumentError, "wrong arguments"),
        ("x: !var missing_var", MissingVariableError, "'missing_var'"),
        ("x: &c !call:list [[*c]]", CycleError, "cycle"),
    ],
)
def test_build_errors_point_at_the_template_line(templates, line, cls, reason):
    path = templates.write("part.yaml", f"-- set a = 1\nok: {{{{ a }}}}\n{line}\n")
    templates.write("main.yaml", "-- include 'part.yaml'\nmain: 1\n")
    cfg = templates.env().load("main.yaml")
    with pytest.raises(cls, match=reason) as info:
        cfg.build("x")
    located(info.value, path, 3, line)


def test_wrong_arguments_show_the_signature(load):
    with pytest.raises(ArgumentError) as info:
        load("x: !call:operator:sub [1]\n").build("x")
    assert "signature: sub(a, b, /)" in str(info.value)


def test_error_in_a_rendering_expression(templates):
    path = templates.write("a.yaml", "a: 1\nb: {{ 1 // 0 }}\n")
    with pytest.raises(TemplateError) as info:
        templates.env().load("a.yaml")
    located(info.value, path, 2, "b: {{ 1 // 0 }}")
    assert "ZeroDivisionError" in str(info.value)


def test_unknown_target(load):
    with pytest.raises(ConfigError, match="no target 'nope'; targets: a"):
        load("a: 1\n").build("nope")


# -- the "included from" chain of located errors ----------------------------------


def chain_lines(err: ConfigError) -> list[str]:
    """The lines under ``template chain:``, stripped."""
    lines = str(err).splitlines()
    start = lines.index("  template chain:") + 1
    return [line.strip() for line in lines[start:] if line.startswith("    ")]


def test_a_yaml_error_in_an_included_template_names_the_line_that_included_it(templates):
    user = templates.write("user.yaml", "z: 0\n-- include 'lib2.yaml'\n")
    lib = templates.write("lib2.yaml", "w: [\nv: 1\n")
    with pytest.raises(YamlError) as info:
        templates.env().load("user.yaml")
    assert info.value.location.chain == ((str(user), 2),)
    # compiler-style, innermost last: the including line, then the error's own line
    assert chain_lines(info.value) == [f"In file included from {user}:2", f"{lib}:2"]


def test_the_chain_lists_every_include_outermost_first(templates):
    user = templates.write("user.yaml", "a: 0\n\n-- include 'mid.yaml'\n")
    mid = templates.write("mid.yaml", "b: 1\n-- include 'deep.yaml'\n")
    deep = templates.write("deep.yaml", "c: !nonsense 1\n")
    with pytest.raises(YamlError) as info:
        templates.env().load("user.yaml")
    located(info.value, deep, 1, "c: !nonsense 1")
    assert info.value.location.chain == ((str(user), 3), (str(mid), 2))
    assert chain_lines(info.value) == [
        f"In file included from {user}:3",
        f"In file included from {mid}:2",
        f"{deep}:1",
    ]


def test_a_yaml_error_in_a_base_template_names_the_config_that_extends_it(templates):
    base = templates.write("base.yaml", "a: 1\n[blk]\nb: [\n")
    child = templates.write("configs/child.yaml", "-- extends 'base.yaml'\n")
    with pytest.raises(YamlError) as info:
        templates.env().load("configs/child.yaml")
    assert (info.value.location.file, info.value.location.line) == (str(base), 3)
    assert chain_lines(info.value) == [f"In template extended by {child}:1", f"{base}:3"]


def test_a_line_of_the_users_own_block_has_no_chain(templates):
    # The child's block is rendered from inside its base, but nothing led there
    # except the child itself: no detour through the base is shown.
    templates.write("base.yaml", "a: 1\n[blk]\nb: 2\n")
    child = templates.write("child.yaml", "-- extends 'base.yaml'\n[blk]\nb: !nonsense 3\n")
    with pytest.raises(YamlError) as info:
        templates.env().load("child.yaml")
    located(info.value, child, 3, "b: !nonsense 3")
    assert info.value.location.chain == ()
    assert "template chain:" not in str(info.value)


def test_an_include_inside_a_childs_block_is_the_chain(templates):
    templates.write("base.yaml", "a: 1\n[blk]\n")
    child = templates.write("child.yaml", "-- extends 'base.yaml'\n[blk]\n-- include 'part.yaml'\n")
    part = templates.write("part.yaml", "p: !nonsense 1\n")
    with pytest.raises(YamlError) as info:
        templates.env().load("child.yaml")
    located(info.value, part, 1, "p: !nonsense 1")
    assert info.value.location.chain == ((str(child), 3),)


def test_build_errors_carry_the_include_chain(templates):
    user = templates.write("user.yaml", "-- include 'part.yaml'\n")
    part = templates.write("part.yaml", "x: !var missing_var\n")
    cfg = templates.env().load("user.yaml")
    with pytest.raises(MissingVariableError) as info:
        cfg.build("x")
    located(info.value, part, 1, "x: !var missing_var")
    assert chain_lines(info.value) == [f"In file included from {user}:1", f"{part}:1"]


def test_a_jinja_error_chain_is_printed_the_same_way(templates):
    lib = templates.write("lib.yaml", "top: 1\n#---- lib.part ----\n\npart: {{ missing }}\n")
    main = templates.write("main.yaml", "m: 0\n-- include 'lib.part'\n")
    with pytest.raises(UndefinedVariableError) as info:
        templates.env().load("main.yaml")
    assert chain_lines(info.value) == [f"In file included from {main}:2", f"{lib}:4"]


def test_a_build_error_names_where_the_calls_values_were_set(templates):
    templates.write("base.yaml", "main: !call:int\n    [args]\n    arg0: '12'\n    base: 10\n")
    child = templates.write(
        "child.yaml", "-- extends 'base.yaml'\n[args]\n== super()\n    base: 99\n"
    )
    cfg = templates.env().load("child.yaml")
    with pytest.raises(ValueError, match="base must be") as info:
        cfg.build("main")
    notes = info.value.__notes__
    assert f"argument base=99 was set at {child}:4" in notes
    assert not any("argument 0" in n for n in notes)  # written beside the call


def test_an_unexpected_keyword_names_the_line_that_wrote_it(templates):
    base = templates.write("base.yaml", "main: !call:round\n    [args]\n    number: 1.25\n")
    child = templates.write(
        "child.yaml", "-- extends 'base.yaml'\n[args]\n== super()\n    digits: 1\n"
    )
    with pytest.raises(ArgumentError) as info:
        templates.env().load("child.yaml").build("main")
    assert (info.value.location.file, info.value.location.line) == (str(base), 1)  # the call
    assert f"'digits' was set at {child}:4" in str(info.value)


def test_a_misspelt_keyword_gets_a_suggestion_and_a_long_signature_is_cut(load):
    with pytest.raises(ArgumentError) as info:
        load("main: !call:forgather.ml.trainer:TrainingArguments\n    learnig_rate: 0.1\n").build()
    message = str(info.value)
    assert "got an unexpected keyword argument 'learnig_rate'" in message
    assert "\n  did you mean 'learning_rate'" in message
    signature = next(line for line in message.splitlines() if line.startswith("  signature: "))
    assert signature.endswith(" parameters)") and len(signature) < 500


def test_an_error_in_a_parents_block_names_the_super_call_that_led_there(templates):
    base = templates.write("base.yaml", "a: 1\n[blk]\nb: {{ nope }}\n")
    child = templates.write("child.yaml", "-- extends 'base.yaml'\n[blk]\n== super()\nc: 2\n")
    with pytest.raises(UndefinedVariableError) as info:
        templates.env().load("child.yaml")
    located(info.value, base, 3, "b: {{ nope }}")
    assert chain_lines(info.value) == [f"Through super() at {child}:3", f"{base}:3"]
