"""The original Forgather's public names, on our machinery (issue 15, "Building").

A tiny workspace written in the original's idioms: ``meta.yaml`` with
``-- extends``, a sub-project pulled in with ``!call:forgather:from_project``,
a ``!meta:forgather.codegen:generate_code`` code template of our own written
out with ``forgather.ml.construct`` build rules.
"""

from __future__ import annotations

import os
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest

import forgather
from forgather.config import ConfigEnvironment, RefusedImportError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    write(
        tmp_path / "forgather_workspace/meta_defaults.yaml",
        """
        searchdir:
            - "{{ joinpath(project_dir, 'templates') }}"
        -- block configs
        -- endblock configs
        """,
    )
    write(
        tmp_path / "parts/meta.yaml",
        """
        -- extends "meta_defaults.yaml"
        -- block configs
        name: "parts"
        default_config: "pair.yaml"
        << endblock configs
        """,
    )
    write(
        tmp_path / "parts/templates/configs/pair.yaml",
        """
        left: &left !call:fractions:Fraction [ {{ numerator | default(1) }}, 3 ]
        right: &right !call:operator:mul [ *left, !var { name: "scale", default: 2 } ]
        main: !dict { left: *left, right: *right }
        """,
    )
    write(
        tmp_path / "app/meta.yaml",
        """
        -- extends "meta_defaults.yaml"
        -- block configs
        name: "app"
        description: "uses parts"
        default_config: "uses_parts.yaml"
        << endblock configs
        """,
    )
    write(
        tmp_path / "app/templates/configs/uses_parts.yaml",
        """
        .define: &parts !call:forgather:from_project
            project_dir: "{{ joinpath(workspace_root, 'parts') }}"
            config_template: "pair.yaml"
            targets: [ "left", "right", "missing" ]
            pp_kwargs: { numerator: 2 }
            scale: 3
        left: !call:getitem [ *parts, "left" ]
        right: !call:getitem [ *parts, "right" ]
        main: !call:forgather:from_project
            project_dir: "{{ joinpath(workspace_root, 'parts') }}"
        """,
    )
    return tmp_path


def test_project_keeps_the_original_call_signature(workspace: Path):
    proj = forgather.Project("", workspace / "parts")
    assert proj.config_name == "pair.yaml"
    third = Fraction(1, 3)
    assert proj() == proj("") == {"left": third, "right": 2 * third}
    left, right = proj("left", "right")
    assert right == 2 * left
    assert proj(["left", "nope"]) == {"left": left}  # a list: a dict without unknown names
    assert proj("right", scale=5) == 5 * left
    assert "left:" in proj.pp_config
    keyword = forgather.Project(
        config_name="pair.yaml", project_dir=workspace / "parts", numerator=4
    )
    assert keyword("left") == 4 * left
    proj.load_config("pair.yaml", numerator=7)
    assert proj("left") == 7 * left


def test_add_template_then_load_config(workspace: Path):
    proj = forgather.Project(None, workspace / "parts")
    proj.add_template("configs/example", "main: !call:len [ abcd ]\n")
    proj.load_config("example")
    assert proj() == 4
    with pytest.raises(forgather.ConfigError):
        proj.add_template("../escape", "main: 1\n")


def test_from_project_in_a_config(workspace: Path):
    proj = forgather.Project(None, workspace / "app")
    built = proj("left", "right", "main", asdict=True)
    assert built["left"] == 2 * built["main"]["left"]  # pp_kwargs reached its templates
    assert built["right"] == 3 * built["left"]  # config_kwargs reached its !var
    assert forgather.from_project(workspace / "parts", targets="left") == built["main"]["left"]


def test_meta_config_original_names(workspace: Path):
    meta = forgather.MetaConfig(workspace / "app")
    assert meta.project_name == "app" and meta.default_cfg == "uses_parts.yaml"
    assert meta.config_path() == "configs/uses_parts.yaml"
    assert meta.meta_path == str(workspace / "app" / "meta.yaml")
    assert ("uses_parts.yaml", str(meta.searchdir[0] + "/configs/uses_parts.yaml")) in list(
        meta.find_templates("configs")
    )
    assert forgather.MetaConfig.find_project_dir(workspace / "app/templates/configs") == str(
        workspace / "app"
    )
    assert forgather.MetaConfig.find_workspace_dir(workspace / "app") == str(workspace)
    assert "Project Name: app" in str(meta)


def test_the_policy_allows_the_compat_names_only():
    env = ConfigEnvironment([])
    cfg = env.load_from_string("main: !call:forgather:Project []\n")
    with pytest.raises(RefusedImportError):
        cfg.build("main")
    for spec in ("forgather:from_project", "forgather.codegen:generate_code"):
        from forgather.config.spec import parse_spec

        assert env.policy.refusal(parse_spec(spec)) is None


CODE_TEMPLATE = """
## A code template in the original's style: the generator fills the pieces.
-- for module, name in imports:
from {{ module }} import {{ name }}
-- endfor

FLAVOUR = {{ repr(flavour) }}
OPTIONS = {{ options | default(None) }}


def build(
-- for var, has_default, default in variables:
    {{ var }}{% if has_default %}={{ repr(default) }}{% endif %},
-- endfor
    **kwargs
):
    {{ definitions | indent(4) }}
    return {{ main_body | indent(4) }}
"""


def test_generate_code_renders_a_code_template(tmp_path: Path):
    write(tmp_path / "templates/code.py", CODE_TEMPLATE)
    out = tmp_path / "out" / "generated.py"
    text = f"""
    parts: &parts !dict@parts
        total: !call:operator:add [ !var "a", !var {{ name: "b", default: 10 }} ]
        pair: !partial:fractions:Fraction [ !var "a" ]
    code: &code !meta:forgather.codegen:generate_code
        searchpath: "{tmp_path / "templates"}"
        template_name: "code.py"
        name_policy: "named"
        obj: *parts
        flavour: "tiny"
        options: {{ depth: 2 }}
    main: !call:forgather.ml.construct:write_file
        data: *code
        output_file: "{out}"
        return_value: "written"
    """
    cfg = ConfigEnvironment([], source_dirs=[str(tmp_path)]).load_from_string(textwrap.dedent(text))
    assert cfg.build("main") == "written"
    namespace: dict = {}
    exec(compile(out.read_text(), str(out), "exec"), namespace)
    built = namespace["build"](a=5)
    assert built["total"] == 15 and built["pair"](2) == Fraction(5, 2)
    assert namespace["FLAVOUR"] == "tiny" and namespace["OPTIONS"] == {"depth": 2}
    assert cfg.build("main") == "written"  # same text: nothing to do


def test_generate_code_default_template_and_config(tmp_path: Path):
    from forgather.codegen import generate_code
    from forgather.graph_encoder import NamePolicy

    cfg = ConfigEnvironment([]).load_from_string("main: !call:len [ !var n ]\n")
    source = generate_code(cfg, factory_name="make", relaxed_kwargs=True)
    namespace: dict = {}
    exec(source, namespace)
    assert namespace["make"](n="abc") == {"main": 3}
    assert NamePolicy.parse("ALL") is NamePolicy.ALL
    with pytest.raises(ValueError):
        NamePolicy.parse("some")


def test_construct_write_file_policies(tmp_path: Path):
    from forgather.ml.construct import build_rule, dependency_list, write_file

    path = tmp_path / "d" / "f.txt"
    assert write_file("one", path) == "one" and path.read_text() == "one"
    with pytest.raises(FileExistsError, match="exists='ok'"):
        write_file("two", path)
    assert write_file("two", path, exists="skip") == "two" and path.read_text() == "one"
    assert write_file(lambda: "two", path, exists="ok", return_value=7) == 7
    assert path.read_text() == "two"
    with pytest.raises(ValueError):
        write_file("x", path, exists="maybe")
    assert not [p for p in os.listdir(path.parent) if p.endswith(".tmp")]

    calls = []
    target = tmp_path / "built.txt"

    def recipe():
        calls.append(1)
        target.write_text("made")

    assert build_rule(target, recipe, target.read_text) == "made"
    assert build_rule(target, recipe, target.read_text) == "made" and len(calls) == 1
    assert dependency_list("first", "side effect") == "first"


def test_build_rule_warns_of_model_code_generated_for_transformers_4(tmp_path: Path, caplog):
    from forgather.ml.construct import build_rule

    model = tmp_path / "output_models" / "m"
    write(model / "config.json", "{}")
    write(
        model / "llama.py", "is_base = any('AutoModel.from_config' in str(frame.line) for f in s)\n"
    )
    with caplog.at_level("WARNING", logger="forgather.ml.construct"):
        for _ in range(2):  # the tokenizer's rule in the same directory: one warning
            assert build_rule(model / "config.json", list, lambda: "loaded") == "loaded"
    (message,) = [r.getMessage() for r in caplog.records]
    assert "llama.py was generated by the original Forgather's model template" in message
    assert f"delete {model}" in message


def test_copy_package_files_copies_what_a_module_uses(tmp_path: Path):
    from forgather.config.spec import Spec, resolve
    from forgather.ml.construct import copy_package_files

    src = tmp_path / "src"
    write(src / "helper.py", "def double(x):\n    return 2 * x\n")
    write(src / "sub/__init__.py", "")
    write(src / "sub/deep.py", "VALUE = 3\n")
    write(
        src / "model.py",
        "from .helper import double\nfrom .sub import deep\n\nclass Model:\n    pass\n",
    )
    write(src / "unused.py", "X = 1\n")
    cls = resolve(Spec("x", "relative", "model", "Model"), [str(src)])
    dest = tmp_path / "dest"
    assert copy_package_files(dest, cls) is cls
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*.py"))
    assert copied == ["helper.py", "model.py", "sub/__init__.py", "sub/deep.py"]
    copy_package_files(dest, cls)  # same files: nothing to do
    (src / "helper.py").write_text("def double(x):\n    return x + x\n")
    with pytest.raises(FileExistsError):
        copy_package_files(dest, cls)


def test_datasets_and_tokenizer_names(tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    from forgather.ml.construct import add_special_tokens, torch_dtype
    from forgather.ml.datasets import (
        block_tokenize_fn,
        normalize_range,
        preprocess_dataset,
        to_iterable_dataset_with_length,
    )
    from forgather.ml.tokenizer import train_tokenizer

    texts = [f"the cat number {i} sat on the mat and looked at the dog" for i in range(60)]
    data = datasets.Dataset.from_dict({"text": texts})
    train_tokenizer(
        model=models.BPE(unk_token="<unk>"),
        pre_tokenizer=pre_tokenizers.ByteLevel(),
        decoder=decoders.ByteLevel(),
        trainer=trainers.BpeTrainer(vocab_size=300, special_tokens=["<bos>", "<eos>", "<unk>"]),
        dataset=data,
        args={"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"},
        output_dir=tmp_path / "tok",
        select_range=0.5,
    )
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tok")
    add_special_tokens(tokenizer, {"pad_token": "<pad>"})
    assert tokenizer.pad_token == "<pad>"

    assert normalize_range(100, [10, 0.5]) == range(10, 50)
    assert normalize_range(100, -10) == range(90) and normalize_range(100, None) is None
    tokenized = preprocess_dataset(
        data, tokenizer, select_range=20, fn_kwargs={"max_length": 8, "truncation": True}
    )
    assert len(tokenized) == 20 and tokenized.column_names == ["input_ids"]
    assert max(len(x) for x in tokenized["input_ids"]) <= 8
    iterable = to_iterable_dataset_with_length(tokenized, num_shards=2)
    assert len(iterable) == 20 and len(list(iterable)) == 20

    batch = {"text": texts[:5]}
    for strategy in ("greedy", "best_fit", "first_fit"):
        out = block_tokenize_fn(
            batch, tokenizer, "text", max_length=16, packed=True, packing_strategy=strategy
        )
        lengths = [len(b) for b in out["input_ids"]]
        assert max(lengths) <= 16 and len(out["document_starts"]) == len(lengths)
    plain = block_tokenize_fn(batch, tokenizer, "text", max_length=1000, overflow=False)
    assert [b[0] for b in plain["input_ids"]] == [tokenizer.bos_token_id] * 5
    assert all(b[-1] == tokenizer.eos_token_id for b in plain["input_ids"])
    assert plain["document_starts"] == [[0]] * 5
    assert str(torch_dtype("bfloat16")) == "torch.bfloat16"


def test_notebook_helpers_print_without_ipython(workspace: Path, capsys, monkeypatch):
    import forgather.nb.notebooks as nb

    monkeypatch.setitem(sys.modules, "IPython", None)  # as if IPython were not installed
    nb.display_codeblock("yaml", "a: 1", "### Title")
    nb.display_project_index(workspace / "parts", show_available_templates=True)
    nb.display_config(
        workspace / "parts",
        config_template="pair.yaml",
        show_pp_config=True,
        show_generated_code=True,
    )
    nb.display_meta(forgather.Project(None, workspace / "parts").meta)
    out = capsys.readouterr().out
    assert "### Title\n```yaml\na: 1\n```" in out
    assert "pair.yaml) (default)" in out and "def construct(" in out and "Search Paths" in out
