"""spec.py: parsing every SPEC form and importing what it names, on inline sources."""

import os.path

import pytest

from forgather.config.spec import (
    HELPERS,
    Spec,
    import_dotted,
    module_split,
    parse_spec,
    resolve,
    synthetic_package,
)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("len", Spec("len", "name", "", "len")),
        ("os.path.join", Spec("os.path.join", "name", "", "os.path.join")),
        ("os.path:join", Spec("os.path:join", "module", "os.path", "join")),
        (
            "collections:OrderedDict.fromkeys",
            Spec(
                "collections:OrderedDict.fromkeys", "module", "collections", "OrderedDict.fromkeys"
            ),
        ),
        ("/src/layers.py:Layer", Spec("/src/layers.py:Layer", "file", "/src/layers.py", "Layer")),
        ("rel/layers.py:Layer", Spec("rel/layers.py:Layer", "file", "rel/layers.py", "Layer")),
        (".attention:Causal", Spec(".attention:Causal", "relative", "attention", "Causal")),
    ],
)
def test_parse_every_form(text, spec):
    assert parse_spec(text) == spec


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty SPEC"),
        ("bad-name", "expected a name, module:Name or file.py:Name"),
        ("os:1x", "'1x' is not a (dotted) Python name"),
        ("os:path:join", "'os:path' is not a module name or a .py file"),
        ("..x:Y", "'..x' is not a module name"),
    ],
)
def test_malformed_specs_say_why(text, reason):
    with pytest.raises(ValueError, match="SPEC") as info:
        parse_spec(text)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("text", "builtin"),
    [
        ("len", True),
        ("dict.fromkeys", True),
        ("getitem", True),
        ("os.path.join", False),
        ("builtins:len", False),
    ],
)
def test_is_builtin(text, builtin):
    assert parse_spec(text).is_builtin is builtin


def test_resolve_names_and_modules():
    assert resolve(parse_spec("getitem")) is HELPERS["getitem"]
    assert resolve(parse_spec("len")) is len
    assert resolve(parse_spec("dict.fromkeys")) == dict.fromkeys
    assert resolve(parse_spec("os.path.join")) is os.path.join
    assert resolve(parse_spec("os.path:join")) is os.path.join
    with pytest.raises(ImportError, match="os has no attribute 'nope'"):
        resolve(parse_spec("os:nope"))


def test_helpers():
    assert HELPERS["getitem"]({"a": 1}, "a") == 1
    assert HELPERS["call"](max, 1, 5) == 5
    assert (HELPERS["items"]({"a": 1}), HELPERS["keys"]({"a": 1}), HELPERS["values"]({"a": 1})) == (
        [("a", 1)],
        ["a"],
        [1],
    )


def test_source_files_import_as_one_package(tmp_path):
    (tmp_path / "layers.py").write_text(
        "from .norms import Norm\n\nclass Layer:\n    norm = Norm\n"
    )
    (tmp_path / "norms.py").write_text("class Norm:\n    pass\n")
    from_file = resolve(parse_spec(f"{tmp_path}/layers.py:Layer"))
    relative = resolve(parse_spec(".layers:Layer"), [str(tmp_path)])
    assert from_file is relative  # the same module: one synthetic package per search path
    assert from_file.norm is resolve(parse_spec(".norms:Norm"), [str(tmp_path)])
    assert synthetic_package([str(tmp_path)]) == synthetic_package([str(tmp_path / ".")])


def test_source_import_errors(tmp_path):
    with pytest.raises(ImportError, match="no such file"):
        resolve(parse_spec(f"{tmp_path}/missing.py:X"))
    with pytest.raises(ImportError, match="needs a submodule_searchpath"):
        resolve(parse_spec(".layers:Layer"))


def test_import_dotted(tmp_path, monkeypatch):
    assert import_dotted("os.path.join") is os.path.join
    assert import_dotted("os.path") is os.path
    with pytest.raises(ImportError, match="no module named 'no_such_module_zz'"):
        import_dotted("no_such_module_zz.X")
    with pytest.raises(ImportError, match="os.path has no attribute 'nope'"):
        import_dotted("os.path.nope")
    # A module that exists but whose own import fails: that error, not "no module".
    (tmp_path / "forgather_spec_probe.py").write_text("import no_such_dependency_zz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency_zz"):
        import_dotted("forgather_spec_probe.X")


def test_module_split():
    assert module_split("os.path.join") == ("os.path", "join")
    assert module_split("collections.OrderedDict.fromkeys") == (
        "collections",
        "OrderedDict.fromkeys",
    )
    assert module_split("json") == ("json", "")
    with pytest.raises(ImportError):
        module_split("no_such_module_zz.X")
