"""Hostile configs (docs/security.md): the Jinja sandbox, the import allowlist,
data-only builds, and inputs that used to escape as exceptions other than ConfigError."""

import os
import sys
import textwrap

import pytest

from forgather.config import (
    ConfigEnvironment,
    ConfigError,
    CycleError,
    ImportPolicy,
    RefusedImportError,
    SandboxError,
    TemplateError,
    TemplateNotFoundError,
    YamlError,
    check,
)
from forgather.config.policy import modelsrc_dirs
from forgather.config.spec import parse_spec


def env(**kwargs) -> ConfigEnvironment:
    """An environment whose own code is nothing: only the allowlist applies."""
    return ConfigEnvironment([], source_dirs=kwargs.pop("source_dirs", []), **kwargs)


def load(text: str, **kwargs):
    return env(**kwargs).load_from_string(textwrap.dedent(text).lstrip("\n"))


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """A module ``forgather_probe_mod`` on sys.path that no policy allows by default."""
    (tmp_path / "forgather_probe_mod.py").write_text(
        "import os\nfrom os import getcwd as where\n\ndef make():\n    return 'made'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "forgather_probe_mod", raising=False)
    yield tmp_path
    sys.modules.pop("forgather_probe_mod", None)


# -- the sandbox ----------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "cycler.__init__.__globals__.os.system('touch PWNED')",
        "''.__class__.__mro__[1].__subclasses__()",
        "lipsum.__globals__",
        "joinpath.__globals__",
        "namespace.__init__",
        "versions._cache",
        "now().__class__",
        "'{0.__class__}'.format(1)",
        "2 ** 100000",
        "'x' * 100000000",
    ],
)
def test_templates_cannot_reach_beyond_the_sandbox(templates, tmp_path, monkeypatch, expression):
    monkeypatch.chdir(tmp_path)
    path = templates.write("a.yaml", f"ok: 1\nmain: {{{{ {expression} }}}}\n")
    with pytest.raises(SandboxError) as info:
        templates.env().load("a.yaml")
    assert info.value.location.file == str(path) and info.value.location.line == 2
    assert str(info.value).startswith(f"{path}:2: not allowed in a template")
    assert not (tmp_path / "PWNED").exists()


def test_a_sandbox_violation_in_a_line_statement_names_its_line(templates):
    path = templates.write("a.yaml", "a: 1\n-- set k = ''.__class__.__mro__\nb: 2\n")
    with pytest.raises(SandboxError) as info:
        templates.env().load("a.yaml")
    assert (info.value.location.file, info.value.location.line) == (str(path), 2)


def test_documented_globals_work_in_the_sandbox(load):
    cfg = load(
        """
        -- set ns = namespace(items=[])
        -- set ns.n = 2
        -- set _ = ns.items.append(3)
        n: {{ ns.n }}
        items: {{ ns.items | toyaml }}
        year: {{ now().year }}
        utc: {{ utcnow().year }}
        times: {{ [filetime(), utcisotime()] | toyaml }}
        rel: {{ relpath('/a/b', '/a') | toyaml }}
        dirs: {{ [user_data_dir('f'), user_config_dir('f'), site_data_dir('f'), site_config_dir('f')] | toyaml }}
        py: {{ python_executable | toyaml }}
        keys: {{ {'b': 1, 'a': 2}.keys() | sort | list | toyaml }}
        upper: {{ 'abc'.upper() | toyaml }}
        """
    )
    built = cfg.build()
    assert (built["n"], built["items"], built["rel"], built["upper"]) == (2, [3], "b", "ABC")
    assert built["year"] >= 2024 and len(built["times"]) == 2 and len(built["dirs"]) == 4
    assert built["py"] == sys.executable and built["keys"] == ["a", "b"]


@pytest.mark.parametrize("name", ["../outside.yaml", "/etc/hostname", "sub/../../outside.yaml"])
def test_template_names_stay_on_the_search_path(templates, tmp_path, name):
    (tmp_path / "outside.yaml").write_text("secret: 1\n")
    templates.write("sub/x.yaml", "x: 1\n")
    templates.write("a.yaml", f"-- include {name!r}\na: 1\n")
    with pytest.raises(TemplateNotFoundError):
        templates.env().load("a.yaml")


# -- the import allowlist -------------------------------------------------

REFUSED = [
    "os:system", "os.system", "os:getcwd", "subprocess:run", "shutil:rmtree", "socket:socket",
    "ctypes:CDLL", "importlib:import_module", "pickle:loads", "marshal:loads", "sys:exit",
    "builtins:eval", "eval", "exec", "compile", "open", "__import__", "type", "setattr",
    "builtins:getattr", "operator:attrgetter", "operator:methodcaller", "pathlib:Path.write_text",
    "pathlib:Path.unlink", "torch.hub:load", "torch:load", "torch.serialization:load",
    "torch.utils.cpp_extension:load_inline",
    "transformers.dynamic_module_utils:get_class_from_dynamic_module",
    "forgather.config.spec:import_dotted", "forgather.cli.main:main", "forgather:Project",
    "yaml:unsafe_load", "jinja2:Template", "numpy:load", "math:__loader__", "collections:_sys.modules",
    "os.path:os.system", "posixpath:os.system",
]  # fmt: skip


@pytest.mark.parametrize("spec", REFUSED)
def test_refused_specs_are_located_config_errors(spec):
    cfg = load(f"ok: 1\nmain: !call:{spec} [x]\n")  # loading names nothing and imports nothing
    with pytest.raises(RefusedImportError) as info:
        cfg.build("main")
    err = info.value
    assert err.location.line == 2 and err.location.file == "<string>"
    assert f"!call:{spec}" in err.reason
    assert "allow_imports" in str(err) and "--trust" in str(err) and "FORGATHER_TRUST=1" in str(err)
    (problem,) = check(cfg)
    assert problem.startswith("<string>:2: ") and f"!call:{spec}" in problem
    with pytest.raises(RefusedImportError):
        cfg.to_python("main")


ALLOWED = {
    "math:sqrt [16.0]": 4.0,
    "os.path:join [a, b]": os.path.join("a", "b"),
    "os.path.join [a, b]": os.path.join("a", "b"),
    "os:path.basename [/x/y]": "y",
    "fractions:Fraction [1, 3]": __import__("fractions").Fraction(1, 3),
    "collections:Counter [aab]": {"a": 2, "b": 1},
    "builtins:str.upper [abc]": "ABC",
    "dict.fromkeys [[a]]": {"a": None},
    "len [abc]": 3,
    "functools:reduce [!partial:operator:add , [1, 2, 3]]": 6,
    "itertools:chain.from_iterable [[[1], [2]]]": None,
    "datetime:timedelta {days: 1}": __import__("datetime").timedelta(days=1),
    "getattr [abc, upper]": None,
    "tests.config.objects:Layer [2]": None,  # the current directory's own code
}


@pytest.mark.parametrize("spec", list(ALLOWED))
def test_allowed_by_default(spec):
    cfg = ConfigEnvironment([]).load_from_string(f"main: !call:{spec}\n")
    assert check(cfg) == []
    built = cfg.build("main")
    if ALLOWED[spec] is not None:
        assert built == ALLOWED[spec]


def test_refused_modules_are_never_imported(probe):
    cfg = load("main: !call:forgather_probe_mod:make\ndotted: !call:forgather_probe_mod.make\n")
    assert check(cfg) and "forgather_probe_mod" not in sys.modules
    for target in ("main", "dotted"):
        with pytest.raises(
            RefusedImportError, match="'forgather_probe_mod.make' is not an allowed import"
        ):
            cfg.build(target)
        with pytest.raises(RefusedImportError):
            cfg.to_python(target)  # a bare dotted name is imported to split it: refused first
    assert "forgather_probe_mod" not in sys.modules
    assert "add 'forgather_probe_mod' to `allow_imports:`" in str(
        pytest.raises(RefusedImportError, cfg.build, "main").value
    )


def test_allow_imports_adds_a_module(probe):
    cfg = load("main: !call:forgather_probe_mod:make\n", allow_imports=["forgather_probe_mod"])
    assert check(cfg) == [] and cfg.build("main") == "made"


def test_own_code_is_found_without_importing_it(probe):
    cfg = load("main: !call:forgather_probe_mod:make\n", source_dirs=[probe])
    assert cfg.policy.is_own_module("forgather_probe_mod")
    assert "forgather_probe_mod" not in sys.modules
    assert cfg.build("main") == "made"


def test_what_own_code_reexports_is_checked(probe):
    cfg = load(
        "main: !call:forgather_probe_mod:where\nos: !call:forgather_probe_mod:os.getcwd\n",
        source_dirs=[probe],
    )
    with pytest.raises(RefusedImportError, match="'forgather_probe_mod.where' is 'posix.getcwd'"):
        cfg.build("main")
    with pytest.raises(RefusedImportError, match="is the module 'os'"):
        cfg.build("os")
    # An entry the user adds is trusted entirely.
    assert (
        load(
            "main: !call:forgather_probe_mod:where\n", allow_imports=["forgather_probe_mod"]
        ).build("main")
        == os.getcwd()
    )


def test_a_user_entry_lifts_a_default_refusal():
    assert load("main: !call:os:getcwd\n", allow_imports=["os"]).build("main") == os.getcwd()
    assert load("main: !call:os:getcwd\n", allow_imports=["os.getcwd"]).build("main") == os.getcwd()
    with pytest.raises(RefusedImportError):
        load("main: !call:os:listdir\n", allow_imports=["os.getcwd"]).build("main")


def test_file_and_relative_specs_need_an_allowed_directory(tmp_path):
    (tmp_path / "comp.py").write_text("def make(x):\n    return x + 1\n")
    text = f"f: !call:{tmp_path}/comp.py:make [1]\nr: !call:.comp:make\n    submodule_searchpath: [{tmp_path}]\n    x: 2\n"
    cfg = load(text)
    for target in ("f", "r"):
        with pytest.raises(RefusedImportError, match="is not in the project, the workspace"):
            cfg.build(target)
    assert len(check(cfg)) == 2
    for allowed in (load(text, allow_imports=[str(tmp_path)]), load(text, source_dirs=[tmp_path])):
        assert allowed.build() == {"f": 2, "r": 3}


def test_modelsrc_is_always_an_allowed_search_directory():
    policy = ImportPolicy.default()
    (modelsrc,) = modelsrc_dirs()
    assert (
        policy.refusal(parse_spec(".norms:RMSNorm"), [os.path.join(modelsrc, "transformer")])
        is None
    )
    assert policy.refusal(parse_spec(".os:system"), [os.path.dirname(os.__file__)]) is not None


def test_the_getattr_helper_refuses_private_and_dangerous_attributes(tmp_path):
    for text, reason in [
        ("main: !call:getattr [!call:collections:Counter , __init__]", "private attributes"),
        (
            f"main: !call:call [!call:getattr [!call:pathlib:Path [{tmp_path}/x], write_text], hi]",
            "'pathlib.Path.write_text'",
        ),
    ]:
        with pytest.raises(RefusedImportError, match=reason) as info:
            load(text + "\n").build("main")
        assert info.value.location.line == 1
    assert not (tmp_path / "x").exists()


def test_trust_remote_code_from_a_config_is_refused():
    text = "main: !call:dict {trust_remote_code: true, x: 1}\nlatent: !call:dict\n    latent_args: {trust_remote_code: true}\n"
    cfg = load(text)
    for target, line in (("main", 1), ("latent", 2)):
        with pytest.raises(
            RefusedImportError, match="trust_remote_code=true would run code downloaded"
        ) as info:
            cfg.build(target)
        assert info.value.location.line == line and "--trust" in str(info.value)
    assert len(check(cfg)) == 1  # latent keywords are known only when built
    assert load(text, trust=True).build("main") == {"trust_remote_code": True, "x": 1}
    assert load("main: !call:dict {trust_remote_code: false}\n").build("main") == {
        "trust_remote_code": False
    }


def test_trust_remote_code_loading_a_directory_of_the_project(tmp_path, monkeypatch):
    """A generated model directory inside the project is the user's own code; a hub name is not."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "output_models" / "m").mkdir(parents=True)
    outside.mkdir()
    (project / "fg_remote_loader.py").write_text(
        "def load(path=None, trust_remote_code=False, **kwargs):\n    return path\n"
    )
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(sys.modules, "fg_remote_loader", raising=False)
    model = project / "output_models" / "m"
    text = f"""
    own: !call:fg_remote_loader:load
        arg0: "{model}"
        trust_remote_code: true
    own_keyword: !call:fg_remote_loader:load
        pretrained_model_name_or_path: "{project}/output_models/../output_models/m"
        trust_remote_code: true
    own_later: !partial:fg_remote_loader:load
        arg0: "{model}"
        trust_remote_code: true
    outside: !call:fg_remote_loader:load
        arg0: "{outside}"
        trust_remote_code: true
    hub: !call:fg_remote_loader:load
        arg0: "some-org/some-model"
        trust_remote_code: true
    not_made_yet: !call:fg_remote_loader:load
        arg0: "{project}/output_models/not_made"
        trust_remote_code: true
    relative: !call:fg_remote_loader:load
        arg0: "output_models/not_made"
        trust_remote_code: true
    """
    cfg = load(text, source_dirs=[str(project)])
    assert cfg.build("own") == str(model)
    assert cfg.build("own_keyword") is None
    assert cfg.build("own_later")() == str(model)
    assert cfg.build("not_made_yet") == f"{project}/output_models/not_made"
    monkeypatch.chdir(project)  # a relative name that is no directory is a hub repository
    for target in ("outside", "hub", "relative"):
        with pytest.raises(RefusedImportError, match="trust_remote_code=true would run code"):
            cfg.build(target)
    problems = check(cfg)
    assert len(problems) == 3 and all("trust_remote_code" in p for p in problems)
    assert load(text, source_dirs=[str(project)], trust=True).build("hub") == "some-org/some-model"
    sys.modules.pop("fg_remote_loader", None)


def test_trust_allows_everything(monkeypatch):
    text = "main: !call:os:getcwd\n"
    assert load(text, trust=True).build("main") == os.getcwd()
    monkeypatch.setenv("FORGATHER_TRUST", "1")
    assert load(text).build("main") == os.getcwd()
    assert "getcwd" in load(text).to_python("main")
    with pytest.raises(RefusedImportError):
        load(text, trust=False).build("main")  # an explicit argument wins over the variable
    monkeypatch.setenv("FORGATHER_TRUST", "0")
    with pytest.raises(RefusedImportError):
        load(text).build("main")


def test_build_data_imports_and_calls_nothing(probe):
    cfg = load(
        """
        meta: !dict:@meta
            name: !call:str [x]
            path: !call:os.path:join [a, b]
            n: !call:len [[1, 2]]
            v: !var {name: v, default: 3}
        other: !call:forgather_probe_mod:make
        printed: !call:print [hi]
        """,
        allow_imports=["forgather_probe_mod"],
        trust=True,
    )
    assert cfg.build_data("meta") == {"name": "x", "path": os.path.join("a", "b"), "n": 2, "v": 3}
    for target in ("other", "printed"):
        with pytest.raises(RefusedImportError, match="is not data") as info:
            cfg.build_data(target)  # neither allow_imports nor trust applies
        assert "write plain values here" in str(info.value)
    assert "forgather_probe_mod" not in sys.modules


# -- inputs that escaped as other exceptions ------------------------------


@pytest.mark.parametrize(
    "text", ["main: \"{{ '\\ud800' }}\"\n", 'main: "\ud800"\n', "ok: 1\nmain: \"{{ '\\x07' }}\"\n"]
)
def test_characters_yaml_cannot_hold_are_located_errors(text):
    with pytest.raises(YamlError, match="cannot appear in YAML") as info:
        ConfigEnvironment([]).load_from_string(text)
    assert info.value.location.line == text.count("\n")
    assert str(info.value).encode("utf-8")  # printable: the surrogate shows as an escape


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("main: &a [1, *a]\n", "!list needs itself (main -> main.1)"),
        ("main: &a {x: *a}\n", "!dict needs itself (main -> main.x)"),
        ("main: &a !call:list [[*a]]\n", "!call:list needs itself (main -> main.0 -> main.0.0)"),
        (
            "main: &v !var {name: x, default: [*v]}\n",
            "!list needs itself (main -> main.0 -> main.0)",
        ),
    ],
)
def test_self_containing_values_are_cycle_errors_everywhere(text, problem):
    cfg = ConfigEnvironment([]).load_from_string(text)
    assert check(cfg) == [f"<string>:1: cycle: {problem}"]
    for operation in (lambda: cfg.build("main"), lambda: cfg.to_python("main"), cfg.to_python):
        with pytest.raises(CycleError) as info:
            operation()
        assert info.value.location.line == 1
    again = ConfigEnvironment([]).load_from_string(cfg.to_yaml())  # an alias, as written
    assert again.to_yaml() == cfg.to_yaml()


def test_a_partial_may_refer_to_itself(load):
    cfg = load("main: &p !partial:max [1, *p]\n")
    assert check(cfg) == []


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 150 + "]" * 150 + "\n",
        "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 150)),
        "a: " + "[" * 5000 + "]" * 5000 + "\n",
    ],
    ids=["nested", "alias-chain", "very-deep"],
)
def test_deep_graphs_are_refused_at_load(text):
    with pytest.raises(YamlError, match="levels deep|nesting depth"):
        ConfigEnvironment([]).load_from_string(text)


def test_every_error_is_a_config_error():
    for cls in (RefusedImportError, SandboxError, YamlError, CycleError):
        assert issubclass(cls, ConfigError)
    assert issubclass(SandboxError, TemplateError)


def test_trust_remote_code_through_a_file_spec_in_an_allowed_directory(tmp_path):
    """The refusal names the file's directory; that directory in allow_imports allows it."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "loader.py").write_text("def load(path, trust_remote_code=False):\n    return path\n")
    text = f"main: !call:{lib}/loader.py:load\n    arg0: some-org/some-model\n    trust_remote_code: true\n"
    with pytest.raises(RefusedImportError, match="trust_remote_code=true would run code") as info:
        load(text, source_dirs=[str(tmp_path)]).build("main")
    assert f"add {str(lib)!r} to `allow_imports:`" in str(info.value)
    allowed = load(text, source_dirs=[str(tmp_path)], allow_imports=[f"{lib}/"])
    assert allowed.build("main") == "some-org/some-model"
