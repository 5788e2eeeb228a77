"""Build semantics of LANGUAGE.md, section 4."""

import pytest

from forgather.config import (
    ArgumentError,
    ConfigEnvironment,
    CycleError,
    MissingVariableError,
    SpecError,
)

OBJ = "tests.config.objects"


def test_singletons_are_shared_factories_are_fresh(load):
    cfg = load(
        f"""
        .s: &s !call:{OBJ}:Layer [1]
        .f: &f !factory:{OBJ}:Layer [2]
        main: !call:dict
            s1: *s
            s2: *s
            f1: *f
            f2: *f
        """
    )
    main = cfg.build("main")
    assert main["s1"] is main["s2"]
    assert main["f1"] is not main["f2"] and main["f1"] == main["f2"]


def test_partial_builds_arguments_per_call(load):
    cfg = load(
        f"""
        .norm: &norm !call:{OBJ}:Layer [0]
        main: !call:{OBJ}:Stack
            layer_factory: !partial:{OBJ}:Layer
                norm: *norm
                width: !factory:int [3]
            n: 3
        norm: *norm
        """
    )
    built = cfg.build()
    layers = built["main"].layers
    assert len({id(layer) for layer in layers}) == 3
    assert all(layer.norm is built["norm"] for layer in layers)


def test_partial_call_time_arguments(load):
    fn = load("f: !partial:dict {a: 1, b: 2}\n").build("f")
    assert fn(b=3, c=4) == {"a": 1, "b": 3, "c": 4}
    add = load("f: !partial:operator:sub [10]\n").build("f")
    assert add(4) == 6


def test_building_twice_gives_fresh_singletons(load):
    cfg = load(f"a: !call:{OBJ}:Layer\n")
    assert cfg.build("a") is not cfg.build("a")


def test_build_all_shares_across_targets(load):
    built = load(f"a: &a !call:{OBJ}:Layer\nb: !call:list [[*a]]\n").build()
    assert built["b"][0] is built["a"]


def test_containers_have_value_semantics(load):
    built = load("a: &l [1, 2]\nb: *l\n").build()
    assert built["a"] == built["b"] and built["a"] is not built["b"]


def test_var_defaults_and_missing(load):
    cfg = load("a: !var {name: x, default: !call:list [[1]]}\nb: !var y\n")
    assert cfg.build("a") == [1]
    assert cfg.build("a", x=5) == 5
    with pytest.raises(MissingVariableError, match="'y'"):
        cfg.build("b")


def test_pp_config_is_a_context_variable(load):
    cfg = load("text: !var pp_config\n")
    assert cfg.build("text") == cfg.pp_template


def test_latent_args(load):
    cfg = load("a: !call:dict\n    x: 1\n    latent_args: !var extra\n")
    assert cfg.build("a", extra={"y": 2}) == {"x": 1, "y": 2}


def test_meta_receives_unbuilt_nodes(load):
    cfg = load(
        f"a: !meta:{OBJ}:describe_nodes\n    arg0: !call:{OBJ}:fails [1]\n    x: [1]\n    y: 2\n"
    )
    assert cfg.build("a") == ["CallNode", "x=ListNode", "y=int"]


def test_cycle_is_reported_with_the_nodes(load):
    cfg = load("a: &a !call:list [[*a]]\n")
    with pytest.raises(
        CycleError, match=r"cycle: !call:list needs itself \(a -> a\.0 -> a\.0\.0\)"
    ):
        cfg.build("a")


def test_arguments_checked_before_the_call(load):
    cfg = load(f"a: !call:{OBJ}:Layer {{widht: 2}}\n")
    with pytest.raises(ArgumentError) as info:
        cfg.build("a")
    message = str(info.value)
    assert "unexpected keyword argument 'widht'" in message
    assert "signature: Layer(width: int = 1, norm=None)" in message
    assert "<string>:1" in message


def test_callee_exception_keeps_its_type_and_gains_a_note(load):
    cfg = load(f"main: !call:dict\n    inner: !call:{OBJ}:fails [7]\n")
    with pytest.raises(ValueError, match="bad value 7") as info:
        cfg.build("main")
    (note,) = info.value.__notes__
    assert note == f"while building main.inner (!call:{OBJ}:fails) at <string>:2"


def test_import_failure_is_a_config_error(load):
    with pytest.raises(SpecError, match="cannot import 'math:no_such_thing'"):
        load("a: !call:math:no_such_thing\n").build()


def test_graph_is_not_mutated_by_build(load):
    cfg = load(f"a: !call:{OBJ}:Layer [2]\n")
    before = cfg.to_yaml()
    cfg.build()
    assert cfg.to_yaml() == before


def test_a_compiled_class_whose_text_signature_keeps_self_is_called(load):
    # tokenizers' Rust classes report "(self, vocab=None, ...)"; the original's
    # tokenizer projects call them with keywords only.
    cfg = load("bpe: !call:tokenizers:models.BPE { unk_token: '<unk>' }\n")
    assert type(cfg.build("bpe")).__name__ == "BPE"


def test_a_function_whose_wrapped_signature_misdescribes_it_is_called(load):
    # transformers 5's AutoModelForCausalLM.from_config is a copy whose __wrapped__
    # says (**kwargs): its own signature is what binds.
    cfg = load("v: !call:tests.config.objects:copied_from_config [ 7 ]\n")
    assert cfg.build("v") == 7
    with pytest.raises(ArgumentError, match="too many positional"):
        load("v: !call:tests.config.objects:copied_from_config [ 1, 2 ]\n").build("v")


def test_a_call_into_a_file_its_own_arguments_write_builds_them_first(tmp_path):
    # The original Forgather's model configs: the config class lives in generated code
    # that one of its arguments writes (into the project's output directory).
    module = tmp_path / "output_models" / "generated.py"
    module.parent.mkdir()
    cfg = ConfigEnvironment([], source_dirs=[tmp_path], allow_imports=[OBJ]).load_from_string(
        f"main: !call:{module}:make\n"
        f"    writer: !call:{OBJ}:write_module [ '{module}', 'def make(writer, x): return x * 2' ]\n"
        "    x: 21\n"
    )
    assert cfg.build("main") == 42


def test_a_misspelt_module_fails_before_any_argument_is_built(load):
    cfg = load(f"main: !call:no_such_module_xyz:f\n    arg: !call:{OBJ}:fails [ 1 ]\n")
    with pytest.raises(SpecError, match="no_such_module_xyz"):
        cfg.build("main")
